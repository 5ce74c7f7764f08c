# node-daemon: one node of the cluster. Build: docker build -t node-daemon .
# Run:   docker run -p 8000:8000 -p 4001:4001 -v node-daemon-repo:/data node-daemon
# The API listens on every interface, so it needs credentials: the first start makes an admin key and
# prints it once (docker logs), or set NODE_DAEMON_ADMIN_TOKEN to a secret of your own.
FROM node:24-bookworm-slim
WORKDIR /app
COPY package.json package-lock.json ./
COPY packages ./packages
COPY bin ./bin
COPY protocols ./protocols
# npm ci runs the root prepare script, which builds the web console (Vite is a dependency, so --omit=dev keeps it).
RUN npm ci --omit=dev --no-audit --no-fund
ENV NODE_DAEMON_REPO=/data \
    NODE_DAEMON_API_HOST=0.0.0.0 \
    NODE_DAEMON_API_PORT=8000 \
    NODE_DAEMON_SWARM_PORT=4001 \
    NODE_DAEMON_INIT_ADMIN_KEY=true
VOLUME ["/data"]
EXPOSE 8000 4001
STOPSIGNAL SIGTERM
# bin/node-daemon runs bin/node-daemon.ts with the Node flags of its shebang.
ENTRYPOINT ["/app/bin/node-daemon"]
CMD ["start"]
