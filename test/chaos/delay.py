#!/usr/bin/env python3
"""
Delays and reorders the packets of one NFQUEUE queue, as netem's
`delay D J reorder P` would: each packet is held for D +- J ms (so packets
overtake each other when J > 0), and a share P of them goes at once, ahead
of those held. The chaos harness runs it inside a node's network namespace,
behind an iptables NFQUEUE rule, where the kernel has no sch_netem.

Standard library only: the netfilter queue protocol over a raw netlink
socket. SIGTERM releases every held packet and unbinds.

usage: delay.py QUEUE DELAY_MS JITTER_MS REORDER
"""
import heapq
import random
import select
import signal
import socket
import struct
import sys
import time

NETLINK_NETFILTER = 12
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET, NFQNL_MSG_VERDICT, NFQNL_MSG_CONFIG = 0, 1, 2
NLMSG_ERROR = 2
NLM_F_REQUEST, NLM_F_ACK = 1, 4
NFQA_CFG_CMD, NFQA_CFG_PARAMS, NFQA_CFG_QUEUE_MAXLEN, NFQA_CFG_MASK, NFQA_CFG_FLAGS = 1, 2, 3, 4, 5
NFQNL_CFG_CMD_BIND, NFQNL_CFG_CMD_UNBIND = 1, 2
NFQNL_COPY_META = 1
NFQA_CFG_F_FAIL_OPEN = 1
NFQA_PACKET_HDR, NFQA_VERDICT_HDR = 1, 2
NF_ACCEPT = 1


def attr(kind, payload):
    length = 4 + len(payload)
    return struct.pack('=HH', length, kind) + payload + b'\0' * (-length % 4)


class Queue:
    def __init__(self, num):
        self.num = num
        self.seq = 0
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.sock.bind((0, 0))

    def send(self, kind, attrs, family=socket.AF_UNSPEC, ack=False):
        self.seq += 1
        body = struct.pack('=BBH', family, 0, socket.htons(self.num)) + b''.join(attrs)
        flags = NLM_F_REQUEST | (NLM_F_ACK if ack else 0)
        self.sock.send(struct.pack('=IHHII', 16 + len(body), (NFNL_SUBSYS_QUEUE << 8) | kind, flags, self.seq, 0) + body)
        if ack:
            self.expect_ack()

    def expect_ack(self):
        for kind, payload in self.messages(self.sock.recv(65536)):
            if kind == NLMSG_ERROR:
                (err,) = struct.unpack_from('=i', payload)
                if err != 0:
                    raise OSError(-err, 'nfqueue configuration refused')
                return

    def bind(self):
        self.send(NFQNL_MSG_CONFIG, [attr(NFQA_CFG_CMD, struct.pack('!BBH', NFQNL_CFG_CMD_BIND, 0, socket.AF_INET))], socket.AF_INET, ack=True)
        self.send(NFQNL_MSG_CONFIG, [
            attr(NFQA_CFG_PARAMS, struct.pack('!IB', 0, NFQNL_COPY_META)),
            attr(NFQA_CFG_QUEUE_MAXLEN, struct.pack('!I', 65536)),
            # a full queue lets packets through rather than dropping them: loss is its own fault
            attr(NFQA_CFG_MASK, struct.pack('!I', NFQA_CFG_F_FAIL_OPEN)),
            attr(NFQA_CFG_FLAGS, struct.pack('!I', NFQA_CFG_F_FAIL_OPEN)),
        ], socket.AF_INET, ack=True)

    def unbind(self):
        self.send(NFQNL_MSG_CONFIG, [attr(NFQA_CFG_CMD, struct.pack('!BBH', NFQNL_CFG_CMD_UNBIND, 0, socket.AF_INET))], socket.AF_INET)

    def accept(self, packet_id):
        self.send(NFQNL_MSG_VERDICT, [attr(NFQA_VERDICT_HDR, struct.pack('!II', NF_ACCEPT, packet_id))])

    @staticmethod
    def messages(data):
        offset = 0
        while offset + 16 <= len(data):
            length, kind, _flags, _seq, _pid = struct.unpack_from('=IHHII', data, offset)
            if length < 16:
                return
            yield kind, data[offset + 16:offset + length]
            offset += (length + 3) & ~3

    def packet_ids(self, data):
        for kind, payload in self.messages(data):
            if kind != (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET:
                continue
            offset = 4  # past nfgenmsg
            while offset + 4 <= len(payload):
                length, atype = struct.unpack_from('=HH', payload, offset)
                if length < 4:
                    break
                if atype & 0x3fff == NFQA_PACKET_HDR:
                    yield struct.unpack_from('!I', payload, offset + 4)[0]
                    break
                offset += (length + 3) & ~3


def main():
    num, delay_ms, jitter_ms, reorder = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
    queue = Queue(num)
    queue.bind()
    held = []
    order = 0
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    signal.signal(signal.SIGINT, lambda *_: stopping.append(True))
    print('bound', flush=True)
    while not stopping:
        now = time.monotonic()
        while held and held[0][0] <= now:
            queue.accept(heapq.heappop(held)[2])
        timeout = max(0.0, held[0][0] - now) if held else 0.5
        try:
            readable, _, _ = select.select([queue.sock], [], [], timeout)
        except InterruptedError:
            continue
        if not readable:
            continue
        try:
            data = queue.sock.recv(1 << 20)
        except OSError:
            # ENOBUFS: the kernel dropped notifications; the packets behind them go by fail-open
            continue
        for packet_id in queue.packet_ids(data):
            if random.random() < reorder:
                queue.accept(packet_id)
                continue
            wait = max(0.0, delay_ms + random.uniform(-jitter_ms, jitter_ms)) / 1000
            order += 1
            heapq.heappush(held, (time.monotonic() + wait, order, packet_id))
    for _, _, packet_id in held:
        queue.accept(packet_id)
    queue.unbind()


if __name__ == '__main__':
    main()
