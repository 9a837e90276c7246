//! One libp2p swarm connected to every server of the cluster.
//!
//! ```text
//!  ClusterConn (cloneable, bounded mpsc) ──Cmd──► event loop ──► Swarm ──► server 0..n-1
//!  ConnEvent (bounded mpsc) ◄── server up/down, gossiped outputs ──┘
//! ```
//! The client uses a fresh random libp2p identity per connection: its network identity
//! is not its chat identity.

use std::collections::HashMap;
use std::time::Duration;

use futures::StreamExt;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{gossipsub, identity, noise, tcp, yamux, PeerId, Swarm};
use protocol::wire::{ClientRequest, ClientResponse, ServerIndex};
use tokio::sync::{mpsc, oneshot};

use p2p::frame::FrameCodec;
use p2p::gossip::GossipGuard;
use p2p::names::{CLIENT_PROTOCOL, OUTPUT_TOPIC};
pub use p2p::ServerAddr;

/// Commands queued before callers wait.
const COMMAND_QUEUE: usize = 256;
/// Events queued before the loop waits for the consumer.
const EVENT_QUEUE: usize = 1024;

/// Why a call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ConnError {
    /// Bad server address in config.
    #[error("config: {0}")]
    Config(String),
    /// The server did not answer (down, timed out, refused).
    #[error("server {0}: {1}")]
    Server(ServerIndex, String),
    /// The connection's event loop stopped.
    #[error("connection closed")]
    Closed,
}

/// What the connection reports.
#[derive(Debug, Clone)]
pub enum ConnEvent {
    /// Connected to a server.
    ServerUp(ServerIndex),
    /// Lost a server.
    ServerDown(ServerIndex),
    /// A gossiped message on the output topic, from `source` if known.
    Gossip {
        /// Originating server, if it is one of ours.
        source: Option<ServerIndex>,
        /// The bytes (a `SignedOutput`).
        data: Vec<u8>,
    },
}

enum Cmd {
    Request {
        server: ServerIndex,
        req: Box<ClientRequest>,
        reply: oneshot::Sender<Result<ClientResponse, ConnError>>,
    },
    Connected(oneshot::Sender<Vec<ServerIndex>>),
}

mod behaviour {
    #![allow(missing_docs)] // the derive generates an undocumented event enum
    use super::*;

    #[derive(NetworkBehaviour)]
    pub struct Behaviour {
        pub(super) client: request_response::Behaviour<FrameCodec<ClientRequest, ClientResponse>>,
        pub(super) gossip: gossipsub::Behaviour,
    }
}
use behaviour::{Behaviour, BehaviourEvent};

/// Handle to the connection (cloneable).
#[derive(Clone)]
pub struct ClusterConn {
    tx: mpsc::Sender<Cmd>,
}

impl ClusterConn {
    /// Connect to every server; returns the handle and the event stream. The loop runs
    /// on the current tokio runtime until every handle is dropped.
    pub fn connect(
        servers: Vec<ServerAddr>,
    ) -> Result<(Self, mpsc::Receiver<ConnEvent>), ConnError> {
        let key = identity::Keypair::generate_ed25519();
        let err = |e: String| ConnError::Config(e);
        let mut swarm = libp2p::SwarmBuilder::with_existing_identity(key)
            .with_tokio()
            .with_tcp(
                tcp::Config::default().nodelay(true),
                noise::Config::new,
                yamux::Config::default,
            )
            .map_err(|e| err(e.to_string()))?
            .with_behaviour(
                |key| -> Result<Behaviour, Box<dyn std::error::Error + Send + Sync>> {
                    let gossip_cfg = gossipsub::ConfigBuilder::default()
                        .mesh_n(3)
                        .mesh_n_low(1)
                        .mesh_n_high(6)
                        .mesh_outbound_min(1)
                        .gossip_lazy(3)
                        .heartbeat_interval(Duration::from_millis(500))
                        .heartbeat_initial_delay(Duration::from_millis(100))
                        .max_transmit_size(protocol::limits::MAX_VECTOR_BYTES + 64 * 1024)
                        .validation_mode(gossipsub::ValidationMode::Strict)
                        // Only a server's signed output is taken (and relayed): defence
                        // in depth, since servers already drop anything else.
                        .validate_messages()
                        .build()?;
                    Ok(Behaviour {
                        client: request_response::Behaviour::new(
                            [(CLIENT_PROTOCOL, ProtocolSupport::Outbound)],
                            request_response::Config::default()
                                .with_request_timeout(Duration::from_secs(15)),
                        ),
                        gossip: gossipsub::Behaviour::new(
                            gossipsub::MessageAuthenticity::Signed(key.clone()),
                            gossip_cfg,
                        )?,
                    })
                },
            )
            .map_err(|e| err(e.to_string()))?
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(3600)))
            .build();
        let topic = gossipsub::IdentTopic::new(OUTPUT_TOPIC);
        swarm
            .behaviour_mut()
            .gossip
            .subscribe(&topic)
            .map_err(|e| err(e.to_string()))?;
        for s in &servers {
            swarm.add_peer_address(s.peer_id, s.addr.clone());
        }
        let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
        let (ev_tx, ev_rx) = mpsc::channel(EVENT_QUEUE);
        let gossip = GossipGuard::new(servers.iter().map(|s| (s.peer_id, s.index)));
        let lp = Loop {
            swarm,
            servers,
            gossip,
            commands: rx,
            events: ev_tx,
            pending: HashMap::new(),
            backoff: Default::default(),
        };
        tokio::spawn(lp.run());
        Ok((Self { tx }, ev_rx))
    }

    /// Send `req` to server `server` and wait for its answer.
    pub async fn request(
        &self,
        server: ServerIndex,
        req: ClientRequest,
    ) -> Result<ClientResponse, ConnError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Cmd::Request {
                server,
                req: Box::new(req),
                reply,
            })
            .await
            .map_err(|_| ConnError::Closed)?;
        rx.await.map_err(|_| ConnError::Closed)?
    }

    /// Servers currently connected.
    pub async fn connected(&self) -> Vec<ServerIndex> {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Cmd::Connected(reply)).await.is_err() {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }
}

struct Loop {
    swarm: Swarm<Behaviour>,
    servers: Vec<ServerAddr>,
    commands: mpsc::Receiver<Cmd>,
    events: mpsc::Sender<ConnEvent>,
    pending: HashMap<
        request_response::OutboundRequestId,
        (
            ServerIndex,
            oneshot::Sender<Result<ClientResponse, ConnError>>,
        ),
    >,
    backoff: p2p::backoff::Backoff<ServerIndex>,
    /// Which gossip is taken: only configured servers' signed outputs.
    gossip: GossipGuard,
}

impl Loop {
    fn index_of(&self, peer: &PeerId) -> Option<ServerIndex> {
        self.servers
            .iter()
            .find(|s| &s.peer_id == peer)
            .map(|s| s.index)
    }

    async fn run(mut self) {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tokio::select! {
                cmd = self.commands.recv() => match cmd {
                    Some(Cmd::Request { server, req, reply }) => {
                        match self.servers.iter().find(|s| s.index == server).cloned() {
                            Some(s) => {
                                let id = self.swarm.behaviour_mut().client.send_request_with_addresses(&s.peer_id, *req, vec![s.addr]);
                                self.pending.insert(id, (server, reply));
                            }
                            None => {
                                let _ = reply.send(Err(ConnError::Server(server, "no such server".into())));
                            }
                        }
                    }
                    Some(Cmd::Connected(reply)) => {
                        let up = self.swarm.connected_peers().filter_map(|p| self.index_of(p)).collect();
                        let _ = reply.send(up);
                    }
                    None => break,
                },
                ev = self.swarm.select_next_some() => self.on_event(ev).await,
                _ = tick.tick() => self.redial(),
            }
        }
    }

    fn redial(&mut self) {
        let now = tokio::time::Instant::now();
        for s in self.servers.clone() {
            if self.swarm.is_connected(&s.peer_id) {
                self.backoff.connected(s.index);
            } else if self.backoff.due(s.index, now) {
                let opts = libp2p::swarm::dial_opts::DialOpts::peer_id(s.peer_id)
                    .addresses(vec![s.addr.clone()])
                    .build();
                let _ = self.swarm.dial(opts);
            }
        }
    }

    async fn on_event(&mut self, ev: SwarmEvent<BehaviourEvent>) {
        use request_response::{Event, Message};
        match ev {
            SwarmEvent::ConnectionEstablished {
                peer_id,
                num_established,
                ..
            } if num_established.get() == 1 => {
                if let Some(i) = self.index_of(&peer_id) {
                    let _ = self.events.send(ConnEvent::ServerUp(i)).await;
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            } => {
                if let Some(i) = self.index_of(&peer_id) {
                    let _ = self.events.send(ConnEvent::ServerDown(i)).await;
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Client(Event::Message {
                message:
                    Message::Response {
                        request_id,
                        response,
                    },
                ..
            })) => {
                if let Some((_, tx)) = self.pending.remove(&request_id) {
                    let _ = tx.send(Ok(response));
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Client(Event::OutboundFailure {
                request_id,
                error,
                ..
            })) => {
                if let Some((server, tx)) = self.pending.remove(&request_id) {
                    let _ = tx.send(Err(ConnError::Server(server, error.to_string())));
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Gossip(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            })) => {
                let verdict = self.gossip.judge(message.source.as_ref(), &message.data);
                let acceptance = match verdict {
                    Ok(()) => gossipsub::MessageAcceptance::Accept,
                    Err(reason) => {
                        tracing::debug!(%propagation_source, reason, "dropped a gossip message");
                        gossipsub::MessageAcceptance::Reject
                    }
                };
                self.swarm
                    .behaviour_mut()
                    .gossip
                    .report_message_validation_result(&message_id, &propagation_source, acceptance);
                if verdict.is_err() {
                    return;
                }
                let source = message.source.as_ref().and_then(|p| self.index_of(p));
                let _ = self
                    .events
                    .send(ConnEvent::Gossip {
                        source,
                        data: message.data,
                    })
                    .await;
            }
            _ => {}
        }
    }
}
