//! openraft's network, carried over the peer-connection actor's libp2p swarm.

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::AnyError;

use crate::net::NetHandle;
use crate::types::{NodeId, PeerRequest, PeerResponse, ServerNode, TypeConfig};

/// Creates per-target clients; cheap (clones a channel sender), never connects.
#[derive(Clone)]
pub struct RaftNet {
    /// The swarm handle.
    pub net: NetHandle,
}

/// A client for one target server.
pub struct RaftClient {
    target: NodeId,
    net: NetHandle,
}

impl RaftNetworkFactory<TypeConfig> for RaftNet {
    type Network = RaftClient;
    async fn new_client(&mut self, target: NodeId, _node: &ServerNode) -> RaftClient {
        RaftClient {
            target,
            net: self.net.clone(),
        }
    }
}

type E<X = openraft::error::Infallible> = RPCError<NodeId, ServerNode, RaftError<NodeId, X>>;

fn unreachable<X: std::error::Error>(msg: String) -> E<X> {
    RPCError::Unreachable(Unreachable::from(AnyError::error(msg)))
}

fn unexpected<X: std::error::Error>(what: &str) -> E<X> {
    RPCError::Network(NetworkError::from(AnyError::error(format!(
        "unexpected response: {what}"
    ))))
}

impl RaftClient {
    async fn call(&self, req: PeerRequest) -> Result<PeerResponse, String> {
        self.net
            .request(self.target, req)
            .await
            .map_err(|e| e.to_string())
    }
}

impl RaftNetwork<TypeConfig> for RaftClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, E> {
        match self
            .call(PeerRequest::Append(rpc))
            .await
            .map_err(unreachable)?
        {
            PeerResponse::Append(Ok(r)) => Ok(r),
            PeerResponse::Append(Err(e)) => {
                Err(RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            PeerResponse::Refused(why) => Err(unreachable(why)),
            _ => Err(unexpected("append")),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, E<InstallSnapshotError>> {
        match self
            .call(PeerRequest::Snapshot(rpc))
            .await
            .map_err(unreachable)?
        {
            PeerResponse::Snapshot(Ok(r)) => Ok(r),
            PeerResponse::Snapshot(Err(e)) => {
                Err(RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            PeerResponse::Refused(why) => Err(unreachable(why)),
            _ => Err(unexpected("snapshot")),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        _option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, E> {
        match self
            .call(PeerRequest::Vote(rpc))
            .await
            .map_err(unreachable)?
        {
            PeerResponse::Vote(Ok(r)) => Ok(r),
            PeerResponse::Vote(Err(e)) => {
                Err(RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            PeerResponse::Refused(why) => Err(unreachable(why)),
            _ => Err(unexpected("vote")),
        }
    }
}
