#!/usr/bin/env node
// A js-libp2p peer for the Chorus output-topic interop test (scripts/interop-js.sh).
//
//   node peer.mjs listen [--marker M] [--topic T] SERVER_MULTIADDR...
//       Subscribe to the output topic, dial every server and print one JSON line on
//       stdout per message gossipsub hands us:
//         {"event":"message","from":"<publisher PeerId>","via":"<peer that relayed it>",
//          "bytes":N,"junk":<payload contains M>,"topic":"...","seqno":"..."}
//
//   node peer.mjs junk [--marker M] [--interval-ms 200] [--no-rotate] [--topic T] SERVER_MULTIADDR...
//       Dial every server, subscribe, and every interval publish, signed with our own
//       (non-server) key, either a junk payload containing M or, once we have seen a
//       real server output, alternately a byte-for-byte replay of the latest one (a
//       well-formed output whose only fault is its publisher). The servers ban a peer
//       that keeps doing this; when every server has shut us out we start over with a
//       fresh identity (unless --no-rotate), so junk keeps arriving for the whole run.
//       Each identity is announced on stdout: {"event":"identity","peerId":"..."}.
//
// Both modes print {"event":"ready","mode":...,"peerId":"..."} on stdout first and run
// until SIGINT/SIGTERM, when they print {"event":"done",...} and exit 0. Diagnostics
// (connections, grafts, prunes, negotiated protocols, publish results) go to stderr as
// JSON lines.
//
// Each multiaddr must end in /p2p/<PeerId>, so noise checks the server's identity. The
// peers never listen, so nobody (not even the other js peer) can dial them: all they
// receive comes through the servers.

import { createLibp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { gossipsub } from '@chainsafe/libp2p-gossipsub'
import { identify } from '@libp2p/identify'
import { multiaddr } from '@multiformats/multiaddr'

// Node 20 lacks Promise.withResolvers (ES2024, Node >= 22), which it-queue (under
// libp2p's peer store, via mortice) calls when it takes a lock. Nothing calls it while the
// modules load, so defining it here, before createLibp2p, is early enough.
if (typeof Promise.withResolvers !== 'function') {
  Promise.withResolvers = function withResolvers () {
    let resolve, reject
    const promise = new this((res, rej) => { resolve = res; reject = rej })
    return { promise, resolve, reject }
  }
}

const usage = 'usage: node peer.mjs listen|junk [--marker M] [--interval-ms N] [--no-rotate] [--topic T] MULTIADDR/p2p/PEERID...'

function parseArgs (argv) {
  const opts = { mode: argv[0], marker: 'CHORUS-INTEROP-JUNK', intervalMs: 200, rotate: true, topic: 'chorus/outputs/1', servers: [] }
  if (opts.mode !== 'listen' && opts.mode !== 'junk') throw new Error(usage)
  for (let i = 1; i < argv.length; i++) {
    const a = argv[i]
    const value = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value\n${usage}`)
      return argv[++i]
    }
    if (a === '--marker') opts.marker = value()
    else if (a === '--interval-ms') opts.intervalMs = Number(value())
    else if (a === '--no-rotate') opts.rotate = false
    else if (a === '--topic') opts.topic = value()
    else if (a.startsWith('/')) opts.servers.push(multiaddr(a))
    else throw new Error(`unknown argument ${a}\n${usage}`)
  }
  if (opts.servers.length === 0) throw new Error(`no server multiaddr given\n${usage}`)
  for (const ma of opts.servers) {
    if (ma.getPeerId() == null) throw new Error(`${ma} has no /p2p/<PeerId>`)
  }
  if (!(opts.intervalMs > 0)) throw new Error('--interval-ms must be positive')
  return opts
}

const out = (obj) => process.stdout.write(JSON.stringify(obj) + '\n')
const diag = (obj) => process.stderr.write(JSON.stringify({ t: new Date().toISOString(), ...obj }) + '\n')
const te = new TextEncoder()

// rust-libp2p's default gossipsub message id: base58(source PeerId) followed by the
// sequence number in decimal, as bytes. js-libp2p-gossipsub's default (key bytes ++ seqno
// bytes) differs. Ids only steer IHAVE/IWANT/IDONTWANT, so either works, but with the
// same function on both sides those control messages name the same messages.
function rustMsgId (msg) {
  if (msg.type !== 'signed') throw new Error('expected a signed message')
  return te.encode(msg.from.toString() + msg.sequenceNumber.toString())
}

function contains (haystack, needle) {
  if (needle.length === 0) return false
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) {
      if (haystack[i + j] !== needle[j]) continue outer
    }
    return true
  }
  return false
}

// One libp2p node (a fresh random Ed25519 identity) subscribed to the topic and dialing
// every server, redialing any that is not connected every 2 s.
async function startPeer (opts) {
  const node = await createLibp2p({
    // No listen addresses: we only dial the servers.
    addresses: { listen: [] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionManager: {
      // Never prune the handful of server connections.
      maxConnections: 64
    },
    services: {
      // js gossipsub declares a dependency on identify. The Rust servers do not run
      // identify, so that exchange fails (harmless, logged by libp2p only at debug); js
      // gossipsub learns that a server speaks /meshsub from the server's own stream.
      identify: identify(),
      pubsub: gossipsub({
        // Servers run ValidationMode::Strict: every message must carry from, seqno and
        // a signature by `from`. This is the default; spelled out for the reader.
        globalSignaturePolicy: 'StrictSign',
        // Servers only speak gossipsub (/meshsub/1.x); no floodsub.
        fallbackToFloodsub: false,
        // Send our own messages to every subscribed peer we know, mesh or not...
        floodPublish: true,
        // ...and never fail a publish because no peer has subscribed (yet).
        allowPublishToZeroTopicPeers: true,
        ignoreDuplicatePublishError: true,
        emitSelf: false,
        doPX: false,
        msgIdFn: rustMsgId,
        // Round outputs are a few KiB to a few hundred KiB; accept what servers accept.
        maxInboundDataLength: 4 * 1024 * 1024
      })
    }
  })
  const pubsub = node.services.pubsub
  const me = node.peerId.toString()
  const servers = new Map(opts.servers.map((ma) => [ma.getPeerId(), ma]))
  const state = { node, pubsub, me, everConnected: false, stopped: false }

  node.addEventListener('connection:open', (evt) => {
    const c = evt.detail
    state.everConnected = true
    diag({ me, event: 'connection-open', peer: c.remotePeer.toString(), addr: c.remoteAddr.toString(), encryption: c.encryption, multiplexer: c.multiplexer })
  })
  node.addEventListener('connection:close', (evt) => {
    diag({ me, event: 'connection-close', peer: evt.detail.remotePeer.toString() })
  })
  pubsub.addEventListener('gossipsub:graft', (evt) => diag({ me, event: 'graft', peer: evt.detail.peerId, direction: evt.detail.direction }))
  pubsub.addEventListener('gossipsub:prune', (evt) => diag({ me, event: 'prune', peer: evt.detail.peerId, direction: evt.detail.direction }))
  pubsub.addEventListener('subscription-change', (evt) => {
    diag({ me, event: 'subscription-change', peer: evt.detail.peerId.toString(), subscriptions: evt.detail.subscriptions })
  })

  pubsub.subscribe(opts.topic)

  const dialing = new Set()
  const dialAll = () => {
    if (state.stopped) return
    for (const [pid, ma] of servers) {
      if (dialing.has(pid) || node.getConnections().some((c) => c.remotePeer.toString() === pid)) continue
      dialing.add(pid)
      node.dial(ma, { signal: AbortSignal.timeout(10_000) })
        .catch((err) => diag({ me, event: 'dial-failed', peer: pid, error: String(err?.message ?? err) }))
        .finally(() => dialing.delete(pid))
    }
  }
  dialAll()
  const redial = setInterval(dialAll, 2000)

  // Once, a few seconds in, report which gossipsub protocol each server connection uses.
  const protoReport = setTimeout(() => {
    for (const c of node.getConnections()) {
      diag({ me, event: 'streams', peer: c.remotePeer.toString(), protocols: c.streams.map((s) => `${s.direction}:${s.protocol}`) })
    }
  }, 5000)

  state.stop = async () => {
    state.stopped = true
    clearInterval(redial)
    clearTimeout(protoReport)
    await Promise.race([node.stop(), new Promise((resolve) => setTimeout(resolve, 3000))])
  }
  return state
}

async function main () {
  const opts = parseArgs(process.argv.slice(2))
  const marker = te.encode(opts.marker)
  const counts = { received: 0, junkReceived: 0, published: 0, replays: 0, publishErrors: 0, identities: 0 }
  const timers = []
  let peer = await startPeer(opts)
  counts.identities = 1
  out({ event: 'ready', mode: opts.mode, peerId: peer.me, topic: opts.topic, servers: opts.servers.map((ma) => ma.getPeerId()) })

  if (opts.mode === 'listen') {
    peer.pubsub.addEventListener('gossipsub:message', (evt) => {
      const { propagationSource, msg } = evt.detail
      if (msg.topic !== opts.topic) return
      const junk = contains(msg.data, marker)
      counts.received++
      if (junk) counts.junkReceived++
      out({
        event: 'message',
        from: msg.type === 'signed' ? msg.from.toString() : null,
        via: propagationSource.toString(),
        bytes: msg.data.length,
        junk,
        topic: msg.topic,
        seqno: msg.type === 'signed' ? msg.sequenceNumber.toString() : null
      })
    })
  } else {
    // The latest real output any of our identities received, to replay under our key.
    let latestOutput = null
    let replayNext = false
    const watch = (p) => {
      out({ event: 'identity', peerId: p.me })
      p.pubsub.addEventListener('gossipsub:message', (evt) => {
        const { msg } = evt.detail
        if (msg.topic === opts.topic && !contains(msg.data, marker)) latestOutput = msg.data
      })
    }
    watch(peer)
    let n = 0
    const publishOne = async () => {
      const p = peer
      if (p.stopped) return
      const replay = replayNext && latestOutput != null
      replayNext = !replayNext
      const payload = replay ? latestOutput : te.encode(`${opts.marker} #${n} from ${p.me}: not a server's signed output`)
      const i = n++
      try {
        const res = await p.pubsub.publish(opts.topic, payload)
        if (replay) counts.replays++
        else counts.published++
        if (i % 25 === 0) diag({ me: p.me, event: 'published', n: i, replay, recipients: res.recipients.map(String) })
      } catch (err) {
        counts.publishErrors++
        if (counts.publishErrors <= 5 || counts.publishErrors % 50 === 0) diag({ me: p.me, event: 'publish-failed', n: i, error: String(err?.message ?? err) })
      }
    }
    timers.push(setInterval(publishOne, opts.intervalMs))

    if (opts.rotate) {
      // Every server shut us out (banned) for two checks in a row: take a new identity.
      let idleChecks = 0
      let rotating = false
      timers.push(setInterval(async () => {
        if (rotating || !peer.everConnected) return
        idleChecks = peer.node.getConnections().length === 0 ? idleChecks + 1 : 0
        if (idleChecks < 2) return
        rotating = true
        idleChecks = 0
        try {
          const old = peer
          diag({ me: old.me, event: 'rotate', reason: 'no server connection left (banned?)' })
          await old.stop()
          peer = await startPeer(opts)
          counts.identities++
          watch(peer)
        } catch (err) {
          diag({ event: 'rotate-failed', error: String(err?.message ?? err) })
        } finally {
          rotating = false
        }
      }, 1000))
    }
  }

  let stopping = false
  const stop = async (signal) => {
    if (stopping) return
    stopping = true
    for (const t of timers) clearInterval(t)
    // Our view of the servers at the end: mesh membership and gossipsub peer scores.
    const mesh = peer.pubsub.getMeshPeers(opts.topic)
    diag({ me: peer.me, event: 'final-view', mesh, scores: Object.fromEntries(opts.servers.map((ma) => [ma.getPeerId(), peer.pubsub.getScore(ma.getPeerId())])) })
    out({ event: 'done', mode: opts.mode, peerId: peer.me, signal, ...counts })
    try {
      await peer.stop()
    } finally {
      process.exit(0)
    }
  }
  process.on('SIGINT', () => stop('SIGINT'))
  process.on('SIGTERM', () => stop('SIGTERM'))
}

main().catch((err) => {
  process.stderr.write(`peer.mjs: ${err?.stack ?? err}\n`)
  process.exit(2)
})
