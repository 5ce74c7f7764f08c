import { StreamState, YamuxStream } from '@chainsafe/libp2p-yamux/stream'

/** The fields of a yamux stream that tell how much of its receive window the remote has used. */
interface ReceiveWindow {
  state: StreamState
  recvWindow: number
  recvWindowCapacity: number
}

let halved = false

/**
 * Makes every yamux stream in this process send a window update as
 * hashicorp/yamux and go-yamux do: once the remote has used half the receive
 * window, not after each data frame as js-yamux does. There, every small
 * message (a Raft append or its answer, an RPC, a block request) drew a
 * frame back the other way: a system call, a noise seal and a pnet pass at
 * each end, for nothing. Without them one Raft writer commits about 16% more
 * a second. The remote never waits for the window: it has at least half of
 * it left whenever an update is held back. Opening, closing and paused
 * streams keep js-yamux's own rule.
 */
export function halveYamuxWindowUpdates (): void {
  if (halved) return
  halved = true
  const send = YamuxStream.prototype.sendWindowUpdate
  YamuxStream.prototype.sendWindowUpdate = function (this: YamuxStream) {
    const window = this as unknown as ReceiveWindow
    if (window.state === StreamState.Established && window.recvWindow - window.recvWindowCapacity < window.recvWindow / 2) return
    send.call(this)
  }
}
