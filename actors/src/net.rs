//! The libp2p swarm and its event loop (owned by the peer-connection actor).
//!
//! ```text
//!  NetHandle (cloneable, bounded mpsc) ──NetCommand──► event loop ──► Swarm (tcp+noise+yamux)
//!                                                        │  /chorus/raft/1    (servers only)
//!  consensus/broadcaster ◄──NetEvent (bounded mpsc)──────┤  /chorus/client/1  (anyone)
//!                                                        └  gossipsub "chorus/outputs/1"
//! ```
//! Every frame is length-prefixed and checked against `MAX_FRAME_BYTES` before it is
//! read; a frame that does not decode fails that one stream (counted in metrics) and the
//! node goes on serving everyone else. Only the configured server PeerIds may use the Raft
//! protocol: requests from anyone else are refused by name and counted.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{allow_block_list, gossipsub, identity, noise, tcp, yamux, Multiaddr, PeerId, Swarm};
use prometheus_client::registry::Registry;
use protocol::wire::{ClientRequest, ClientResponse};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use p2p::frame::{FrameCodec, RejectHook};
use p2p::gossip::GossipGuard;
use p2p::names::{CLIENT_PROTOCOL, OUTPUT_TOPIC, RAFT_PROTOCOL};
use p2p::ServerAddr;

use crate::metrics::NetMetrics;
use crate::types::{NodeId, PeerRequest, PeerResponse};

/// Commands queued to the event loop before senders wait (backpressure, not loss).
const COMMAND_QUEUE: usize = 1024;
/// Raft RPCs from servers queued to the consensus actor before the loop waits. Only the
/// configured servers produce them, and each is handed off to its own task at once.
const RAFT_EVENT_QUEUE: usize = 1024;
/// Client calls and gossip queued to the actors. When full, a client call is answered
/// "busy" at once and gossip is dropped: client traffic never makes the loop wait, so it
/// never delays a Raft heartbeat.
const CLIENT_EVENT_QUEUE: usize = 1024;

mod behaviour {
    #![allow(missing_docs)] // the derive generates an undocumented event enum
    use super::*;

    /// The swarm's behaviours.
    #[derive(NetworkBehaviour)]
    pub struct Behaviour {
        pub(super) raft: request_response::Behaviour<FrameCodec<PeerRequest, PeerResponse>>,
        pub(super) client: request_response::Behaviour<FrameCodec<ClientRequest, ClientResponse>>,
        pub(super) gossip: gossipsub::Behaviour,
        pub(super) blocked: allow_block_list::Behaviour<allow_block_list::BlockedPeers>,
    }
}
pub use behaviour::{Behaviour, BehaviourEvent};

/// Why a network call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum NetError {
    /// No such server, or not connected and the dial failed.
    #[error("server {0} unreachable: {1}")]
    Unreachable(NodeId, String),
    /// The event loop has stopped.
    #[error("network stopped")]
    Stopped,
}

/// Commands to the event loop.
pub enum NetCommand {
    /// Send a request to server `target`.
    Request {
        /// Target server.
        target: NodeId,
        /// The request (boxed: a command can be large next to the other variants).
        req: Box<PeerRequest>,
        /// Where the response goes.
        reply: oneshot::Sender<Result<PeerResponse, NetError>>,
    },
    /// Publish bytes on the output topic.
    Publish(Vec<u8>),
    /// Report connected servers.
    Connected(oneshot::Sender<Vec<NodeId>>),
}

/// Inbound traffic for the actors.
pub enum NetEvent {
    /// A server's request.
    Peer {
        /// Sender's server index.
        from: NodeId,
        /// The request.
        req: PeerRequest,
        /// Where the answer goes.
        reply: oneshot::Sender<PeerResponse>,
    },
    /// A client's request.
    Client {
        /// Who sent it (quotas are per peer).
        peer: PeerId,
        /// The request.
        req: ClientRequest,
        /// Where the answer goes.
        reply: oneshot::Sender<ClientResponse>,
    },
    /// A gossip message on the output topic.
    Gossip(Vec<u8>),
}

/// Inbound traffic, on two queues so that no client can hold up Raft.
pub struct NetEvents {
    /// Raft RPCs and forwarded writes from servers ([`NetEvent::Peer`]).
    pub raft: mpsc::Receiver<NetEvent>,
    /// Client calls and gossip ([`NetEvent::Client`], [`NetEvent::Gossip`]).
    pub clients: mpsc::Receiver<NetEvent>,
}

/// Cloneable handle to the event loop.
#[derive(Clone)]
pub struct NetHandle {
    tx: mpsc::Sender<NetCommand>,
}

impl NetHandle {
    /// Send `req` to server `target` and wait for its response.
    pub async fn request(
        &self,
        target: NodeId,
        req: PeerRequest,
    ) -> Result<PeerResponse, NetError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(NetCommand::Request {
                target,
                req: Box::new(req),
                reply,
            })
            .await
            .map_err(|_| NetError::Stopped)?;
        rx.await.map_err(|_| NetError::Stopped)?
    }

    /// Publish on the output topic.
    pub async fn publish(&self, data: Vec<u8>) -> Result<(), NetError> {
        self.tx
            .send(NetCommand::Publish(data))
            .await
            .map_err(|_| NetError::Stopped)
    }

    /// Connected servers.
    pub async fn connected(&self) -> Result<Vec<NodeId>, NetError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(NetCommand::Connected(tx))
            .await
            .map_err(|_| NetError::Stopped)?;
        rx.await.map_err(|_| NetError::Stopped)
    }
}

/// Everything needed to start the network.
pub struct NetConfig {
    /// Our libp2p identity.
    pub keypair: identity::Keypair,
    /// Our server index.
    pub me: NodeId,
    /// Where to listen.
    pub listen: Multiaddr,
    /// All servers (including us).
    pub peers: Vec<ServerAddr>,
    /// Idle timeout for connections.
    pub idle_timeout: Duration,
}

/// Build the swarm and start listening. Returns the loop future to spawn, a handle, and
/// the inbound event receiver.
pub fn start(
    cfg: NetConfig,
    registry: &mut Registry,
    metrics: NetMetrics,
) -> anyhow::Result<(
    impl std::future::Future<Output = ()> + Send,
    NetHandle,
    NetEvents,
)> {
    let hook = |proto: &'static str| -> RejectHook {
        let m = metrics.clone();
        Arc::new(move |reason: &'static str| {
            m.rejected(&format!("{proto}_{reason}"));
            tracing::debug!(protocol = proto, reason, "refused an inbound frame");
        })
    };
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(cfg.keypair.clone())
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )?
        .with_bandwidth_metrics(registry)
        .with_behaviour(
            |key| -> Result<Behaviour, Box<dyn std::error::Error + Send + Sync>> {
                let rr_cfg = request_response::Config::default()
                    .with_request_timeout(Duration::from_secs(10))
                    .with_max_concurrent_streams(256);
                let gossip_cfg = gossipsub::ConfigBuilder::default()
                    .mesh_n(4)
                    .mesh_n_low(2)
                    .mesh_n_high(8)
                    .mesh_outbound_min(1)
                    .gossip_lazy(4)
                    .heartbeat_interval(Duration::from_millis(500))
                    .heartbeat_initial_delay(Duration::from_millis(100))
                    // A round output is at most MAX_VECTOR_BYTES plus a vouch; leave headroom.
                    .max_transmit_size(protocol::limits::MAX_VECTOR_BYTES + 64 * 1024)
                    .validation_mode(gossipsub::ValidationMode::Strict)
                    // Nothing is forwarded before we say it is a server's output.
                    .validate_messages()
                    .build()?;
                Ok(Behaviour {
                    raft: request_response::Behaviour::with_codec(
                        FrameCodec::with_reject_hook(hook("raft")),
                        [(RAFT_PROTOCOL, ProtocolSupport::Full)],
                        rr_cfg.clone(),
                    ),
                    client: request_response::Behaviour::with_codec(
                        FrameCodec::with_reject_hook(hook("client")),
                        [(CLIENT_PROTOCOL, ProtocolSupport::Full)],
                        rr_cfg,
                    ),
                    gossip: gossipsub::Behaviour::new(
                        gossipsub::MessageAuthenticity::Signed(key.clone()),
                        gossip_cfg,
                    )?,
                    blocked: allow_block_list::Behaviour::default(),
                })
            },
        )?
        .with_swarm_config(|c| c.with_idle_connection_timeout(cfg.idle_timeout))
        .build();
    swarm.listen_on(cfg.listen.clone())?;
    let topic = gossipsub::IdentTopic::new(OUTPUT_TOPIC);
    swarm.behaviour_mut().gossip.subscribe(&topic)?;
    for p in &cfg.peers {
        if node_id(p) != cfg.me {
            swarm.add_peer_address(p.peer_id, p.addr.clone());
        }
    }
    let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
    let (raft_tx, raft_rx) = mpsc::channel(RAFT_EVENT_QUEUE);
    let (client_tx, client_rx) = mpsc::channel(CLIENT_EVENT_QUEUE);
    let gossip = GossipGuard::new(cfg.peers.iter().map(|p| (p.peer_id, p.index)));
    let lp = EventLoop {
        swarm,
        me: cfg.me,
        peers: cfg.peers,
        commands: rx,
        raft_events: raft_tx,
        client_events: client_tx,
        topic,
        pending: HashMap::new(),
        gossip,
        backoff: Default::default(),
        metrics,
        peer_replies: FuturesUnordered::new(),
        client_replies: FuturesUnordered::new(),
    };
    Ok((
        lp.run(),
        NetHandle { tx },
        NetEvents {
            raft: raft_rx,
            clients: client_rx,
        },
    ))
}

struct EventLoop {
    swarm: Swarm<Behaviour>,
    me: NodeId,
    peers: Vec<ServerAddr>,
    commands: mpsc::Receiver<NetCommand>,
    raft_events: mpsc::Sender<NetEvent>,
    client_events: mpsc::Sender<NetEvent>,
    topic: gossipsub::IdentTopic,
    pending: HashMap<
        request_response::OutboundRequestId,
        oneshot::Sender<Result<PeerResponse, NetError>>,
    >,
    /// What gossip we forward, and the junk tally of non-server peers.
    gossip: GossipGuard,
    /// Redial schedule per server.
    backoff: p2p::backoff::Backoff<NodeId>,
    metrics: NetMetrics,
    /// Answers being prepared by the actors, sent back when ready.
    peer_replies: FuturesUnordered<BoxFuture<'static, PeerReply>>,
    client_replies: FuturesUnordered<BoxFuture<'static, ClientReply>>,
}

type PeerReply = (
    request_response::ResponseChannel<PeerResponse>,
    Result<PeerResponse, oneshot::error::RecvError>,
);
type ClientReply = (
    request_response::ResponseChannel<ClientResponse>,
    Result<ClientResponse, oneshot::error::RecvError>,
);

impl EventLoop {
    fn server_of(&self, peer: &PeerId) -> Option<NodeId> {
        self.peers.iter().find(|p| &p.peer_id == peer).map(node_id)
    }

    async fn run(mut self) {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tokio::select! {
                cmd = self.commands.recv() => match cmd {
                    Some(cmd) => self.on_command(cmd),
                    None => break, // every handle dropped: shut down
                },
                ev = self.swarm.select_next_some() => self.on_swarm_event(ev).await,
                Some((channel, resp)) = self.peer_replies.next(), if !self.peer_replies.is_empty() => {
                    let resp: Result<PeerResponse, _> = resp;
                    let resp = resp.unwrap_or_else(|_| PeerResponse::Refused("server shutting down".into()));
                    let _ = self.swarm.behaviour_mut().raft.send_response(channel, resp);
                }
                Some((channel, resp)) = self.client_replies.next(), if !self.client_replies.is_empty() => {
                    let resp: Result<ClientResponse, _> = resp;
                    let resp = resp.unwrap_or_else(|_| unavailable("server shutting down"));
                    let _ = self.swarm.behaviour_mut().client.send_response(channel, resp);
                }
                _ = tick.tick() => self.reconnect(),
            }
        }
        tracing::info!("network event loop stopped");
    }

    fn reconnect(&mut self) {
        let now = Instant::now();
        let connected = self.swarm.connected_peers().count();
        self.metrics.peers_connected.set(connected as i64);
        for p in self.peers.clone() {
            let id = node_id(&p);
            if id == self.me || self.swarm.is_connected(&p.peer_id) {
                self.backoff.connected(id);
            } else if self.backoff.due(id, now) {
                let opts = libp2p::swarm::dial_opts::DialOpts::peer_id(p.peer_id)
                    .addresses(vec![p.addr.clone()])
                    .build();
                if let Err(e) = self.swarm.dial(opts) {
                    tracing::debug!(peer = id, error = %e, "dial failed");
                }
            }
        }
    }

    fn on_command(&mut self, cmd: NetCommand) {
        match cmd {
            NetCommand::Request { target, req, reply } => {
                let Some(peer) = self.peers.iter().find(|p| node_id(p) == target).cloned() else {
                    let _ = reply.send(Err(NetError::Unreachable(
                        target,
                        "not a configured server".into(),
                    )));
                    return;
                };
                let id = self.swarm.behaviour_mut().raft.send_request_with_addresses(
                    &peer.peer_id,
                    *req,
                    vec![peer.addr],
                );
                self.pending.insert(id, reply);
            }
            NetCommand::Publish(data) => {
                if let Err(e) = self
                    .swarm
                    .behaviour_mut()
                    .gossip
                    .publish(self.topic.clone(), data)
                {
                    tracing::debug!(error = %e, "gossip publish failed");
                    self.metrics.publish_failures.inc();
                }
            }
            NetCommand::Connected(reply) => {
                let ids = self
                    .swarm
                    .connected_peers()
                    .filter_map(|p| self.server_of(p))
                    .collect();
                let _ = reply.send(ids);
            }
        }
    }

    async fn on_swarm_event(&mut self, ev: SwarmEvent<BehaviourEvent>) {
        match ev {
            SwarmEvent::NewListenAddr { address, .. } => tracing::info!(%address, "listening"),
            SwarmEvent::ConnectionEstablished { peer_id, .. } => {
                self.metrics.connections_opened.inc();
                if let Some(id) = self.server_of(&peer_id) {
                    tracing::info!(server = id, "connected to server");
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            } => {
                if let Some(id) = self.server_of(&peer_id) {
                    tracing::info!(server = id, "disconnected from server");
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Raft(ev)) => self.on_raft_event(ev).await,
            SwarmEvent::Behaviour(BehaviourEvent::Client(ev)) => self.on_client_event(ev),
            SwarmEvent::Behaviour(BehaviourEvent::Gossip(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            })) => {
                let verdict = self.gossip.judge(message.source.as_ref(), &message.data);
                let acceptance = match verdict {
                    Ok(()) => gossipsub::MessageAcceptance::Accept,
                    Err(reason) => {
                        self.metrics.rejected(reason);
                        tracing::debug!(%propagation_source, reason, "dropped a gossip message");
                        if self.gossip.strike(propagation_source) {
                            self.swarm
                                .behaviour_mut()
                                .blocked
                                .block_peer(propagation_source);
                            self.metrics.rejected("gossip_peer_banned");
                            tracing::warn!(peer = %propagation_source, "banned a peer that kept publishing junk on the output topic");
                        }
                        gossipsub::MessageAcceptance::Reject
                    }
                };
                self.swarm
                    .behaviour_mut()
                    .gossip
                    .report_message_validation_result(&message_id, &propagation_source, acceptance);
                if verdict.is_ok()
                    && self
                        .client_events
                        .try_send(NetEvent::Gossip(message.data))
                        .is_err()
                {
                    // Servers only count peers' copies; dropping one loses nothing.
                    self.metrics.rejected("gossip_queue_full");
                }
            }
            _ => {}
        }
    }

    async fn on_raft_event(&mut self, ev: request_response::Event<PeerRequest, PeerResponse>) {
        use request_response::{Event, Message};
        match ev {
            Event::Message {
                peer,
                message:
                    Message::Request {
                        request, channel, ..
                    },
                ..
            } => {
                let Some(from) = self.server_of(&peer) else {
                    // Not one of the configured servers: never let it near Raft.
                    self.metrics.rejected("raft_from_non_server");
                    tracing::warn!(%peer, "refused a Raft request from a peer that is not a configured server");
                    let _ = self.swarm.behaviour_mut().raft.send_response(
                        channel,
                        PeerResponse::Refused(format!("peer {peer} is not a configured server")),
                    );
                    return;
                };
                let (reply, rx) = oneshot::channel();
                if self
                    .raft_events
                    .send(NetEvent::Peer {
                        from,
                        req: request,
                        reply,
                    })
                    .await
                    .is_err()
                {
                    return;
                }
                self.peer_replies
                    .push(Box::pin(async move { (channel, rx.await) }));
            }
            Event::Message {
                message:
                    Message::Response {
                        request_id,
                        response,
                    },
                ..
            } => {
                if let Some(tx) = self.pending.remove(&request_id) {
                    let _ = tx.send(Ok(response));
                }
            }
            Event::OutboundFailure {
                request_id,
                error,
                peer,
                ..
            } => {
                if let Some(tx) = self.pending.remove(&request_id) {
                    let id = self.server_of(&peer).unwrap_or(u64::MAX);
                    let _ = tx.send(Err(NetError::Unreachable(id, error.to_string())));
                }
            }
            Event::InboundFailure { error, peer, .. } => {
                self.metrics.rejected("raft_inbound_failure");
                tracing::debug!(%peer, %error, "inbound raft stream failed");
            }
            _ => {}
        }
    }

    fn on_client_event(&mut self, ev: request_response::Event<ClientRequest, ClientResponse>) {
        use request_response::{Event, Message};
        match ev {
            Event::Message {
                peer,
                message:
                    Message::Request {
                        request, channel, ..
                    },
                ..
            } => {
                let (reply, rx) = oneshot::channel();
                match self.client_events.try_send(NetEvent::Client {
                    peer,
                    req: request,
                    reply,
                }) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        self.metrics.rejected("client_busy");
                        let busy = unavailable("server busy: request queue full, retry later");
                        let _ = self
                            .swarm
                            .behaviour_mut()
                            .client
                            .send_response(channel, busy);
                        return;
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => return,
                }
                self.client_replies
                    .push(Box::pin(async move { (channel, rx.await) }));
            }
            Event::InboundFailure { error, .. } => {
                // Malformed or oversized frames land here: that stream fails, nothing else.
                self.metrics.rejected("client_inbound_failure");
                tracing::debug!(%error, "inbound client stream failed");
            }
            _ => {}
        }
    }
}

/// A server's Raft node id is its index in the configured list.
fn node_id(p: &ServerAddr) -> NodeId {
    NodeId::from(p.index)
}

fn unavailable(msg: &str) -> ClientResponse {
    ClientResponse::Unavailable(
        protocol::bounded::Bytes::new(msg.as_bytes().to_vec()).unwrap_or_default(),
    )
}
