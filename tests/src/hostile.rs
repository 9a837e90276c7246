//! Tools for hostile peers: a codec that sends raw bytes, a swarm with a fresh identity,
//! and one-request helpers. Used by the hostile-peer tests and the `abuse` binary.

use std::time::Duration;

use futures::StreamExt;

use libp2p::request_response;
use libp2p::swarm::SwarmEvent;
use libp2p::{noise, tcp, yamux, StreamProtocol};

use client::conn::ServerAddr;

/// A codec that writes whatever bytes it is given and reads whatever comes back.
#[derive(Clone, Default)]
pub struct Raw;

impl request_response::Codec for Raw {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = Vec<u8>;
    async fn read_request<T: futures::AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        _: &mut T,
    ) -> std::io::Result<Vec<u8>> {
        Err(std::io::Error::other("not a server"))
    }
    async fn read_response<T: futures::AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> std::io::Result<Vec<u8>> {
        use futures::AsyncReadExt;
        let mut out = Vec::new();
        io.take(1 << 20).read_to_end(&mut out).await?;
        Ok(out)
    }
    async fn write_request<T: futures::AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        r: Vec<u8>,
    ) -> std::io::Result<()> {
        use futures::AsyncWriteExt;
        io.write_all(&r).await?;
        io.close().await
    }
    async fn write_response<T: futures::AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        _: &mut T,
        _: Vec<u8>,
    ) -> std::io::Result<()> {
        Ok(())
    }
}

/// A swarm with a fresh identity (a peer the cluster has never seen), tcp + noise + yamux.
pub fn swarm<B: libp2p::swarm::NetworkBehaviour>(b: B) -> anyhow::Result<libp2p::Swarm<B>> {
    Ok(libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )?
        .with_behaviour(|_| b)?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build())
}

/// Send one request and wait for its outcome: Ok(response) or Err(failure text), or
/// Err after `timeout`.
pub async fn one<C>(
    sw: &mut libp2p::Swarm<request_response::Behaviour<C>>,
    s: &ServerAddr,
    req: C::Request,
    timeout: Duration,
) -> Result<C::Response, String>
where
    C: request_response::Codec + Clone + Send + 'static,
    C::Response: std::fmt::Debug,
{
    let id = sw
        .behaviour_mut()
        .send_request_with_addresses(&s.peer_id, req, vec![s.addr.clone()]);
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let Ok(ev) = tokio::time::timeout_at(deadline, sw.select_next_some()).await else {
            return Err(format!("no outcome within {timeout:?}"));
        };
        match ev {
            SwarmEvent::Behaviour(request_response::Event::Message {
                message:
                    request_response::Message::Response {
                        request_id,
                        response,
                    },
                ..
            }) if request_id == id => return Ok(response),
            SwarmEvent::Behaviour(request_response::Event::OutboundFailure {
                request_id,
                error,
                ..
            }) if request_id == id => return Err(error.to_string()),
            _ => {}
        }
    }
}

/// A gossipsub-only peer with a fresh identity, subscribed to the output topic: what any
/// outsider's libp2p node can be. Its messages are signed by its own key.
pub fn gossip_swarm() -> anyhow::Result<libp2p::Swarm<libp2p::gossipsub::Behaviour>> {
    use libp2p::gossipsub;
    let mut sw = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )?
        .with_behaviour(
            |key| -> Result<gossipsub::Behaviour, Box<dyn std::error::Error + Send + Sync>> {
                let cfg = gossipsub::ConfigBuilder::default()
                    .heartbeat_interval(Duration::from_millis(200))
                    .max_transmit_size(protocol::limits::MAX_VECTOR_BYTES + 64 * 1024)
                    .build()?;
                Ok(gossipsub::Behaviour::new(
                    gossipsub::MessageAuthenticity::Signed(key.clone()),
                    cfg,
                )?)
            },
        )?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build();
    sw.behaviour_mut()
        .subscribe(&gossipsub::IdentTopic::new(p2p::names::OUTPUT_TOPIC))?;
    Ok(sw)
}

/// A non-server peer that publishes junk on the output topic when asked, taking a fresh
/// identity whenever the servers have banned the current one (no connection left).
pub struct JunkPublisher {
    tx: tokio::sync::mpsc::Sender<(Vec<u8>, tokio::sync::oneshot::Sender<bool>)>,
}

impl JunkPublisher {
    /// Publish `bytes`; true if our gossipsub took it (a server then receives it and must
    /// drop it), false while no server is in our mesh.
    pub async fn publish(&self, bytes: Vec<u8>) -> bool {
        let (reply, rx) = tokio::sync::oneshot::channel();
        if self.tx.send((bytes, reply)).await.is_err() {
            return false;
        }
        rx.await.unwrap_or(false)
    }
}

/// Start a [`JunkPublisher`] dialling every server in `servers`.
pub fn junk_publisher(servers: Vec<ServerAddr>) -> JunkPublisher {
    let (tx, mut rx) =
        tokio::sync::mpsc::channel::<(Vec<u8>, tokio::sync::oneshot::Sender<bool>)>(16);
    tokio::spawn(async move {
        let topic = libp2p::gossipsub::IdentTopic::new(p2p::names::OUTPUT_TOPIC);
        let mut current: Option<libp2p::Swarm<libp2p::gossipsub::Behaviour>> = None;
        loop {
            if current.is_none() {
                let Ok(mut sw) = gossip_swarm() else { return };
                for s in &servers {
                    let _ = sw.dial(
                        libp2p::swarm::dial_opts::DialOpts::peer_id(s.peer_id)
                            .addresses(vec![s.addr.clone()])
                            .build(),
                    );
                }
                current = Some(sw);
            }
            let Some(sw) = current.as_mut() else { continue };
            tokio::select! {
                cmd = rx.recv() => {
                    let Some((bytes, reply)) = cmd else { return };
                    let ok = sw.behaviour_mut().publish(topic.clone(), bytes).is_ok();
                    if !ok && sw.connected_peers().count() == 0 {
                        current = None; // banned everywhere: a new identity
                    }
                    let _ = reply.send(ok);
                }
                _ = sw.select_next_some() => {}
            }
        }
    });
    JunkPublisher { tx }
}
