//! Metrics: one prometheus-client registry for the node (libp2p's metrics included),
//! per-actor mailbox depth / handled / failed, Raft and network gauges.

use std::sync::{Arc, Mutex};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Label for per-actor metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ActorLabel {
    /// Actor name.
    pub actor: String,
}

/// Label for rejections.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// Why.
    pub reason: String,
}

/// Per-actor counters, shared by senders (enqueue) and the actor (handle).
#[derive(Clone)]
pub struct ActorStats {
    name: &'static str,
    mailbox: Family<ActorLabel, Gauge>,
    handled: Family<ActorLabel, Counter>,
    failed: Family<ActorLabel, Counter>,
}

impl ActorStats {
    fn label(&self) -> ActorLabel {
        ActorLabel {
            actor: self.name.to_string(),
        }
    }
    /// A message was queued for this actor.
    pub fn enqueued(&self) {
        self.mailbox.get_or_create(&self.label()).inc();
    }
    /// The actor took a message off its mailbox.
    pub fn dequeued(&self) {
        self.mailbox.get_or_create(&self.label()).dec();
        self.handled.get_or_create(&self.label()).inc();
    }
    /// Handling a message failed.
    pub fn failed(&self) {
        self.failed.get_or_create(&self.label()).inc();
    }
    /// (mailbox depth, handled, failed), for `/status`.
    pub fn snapshot(&self) -> (i64, u64, u64) {
        (
            self.mailbox.get_or_create(&self.label()).get(),
            self.handled.get_or_create(&self.label()).get(),
            self.failed.get_or_create(&self.label()).get(),
        )
    }
    /// The actor's name.
    pub fn name(&self) -> &'static str {
        self.name
    }
}

/// Network gauges and counters.
#[derive(Clone, Default)]
pub struct NetMetrics {
    /// Connected peers (servers and clients).
    pub peers_connected: Gauge,
    /// Connections established since start (churn shows as a fast-rising count).
    pub connections_opened: Counter,
    /// Gossip publishes that failed.
    pub publish_failures: Counter,
    /// Refused inbound traffic, by reason.
    pub rejections: Family<ReasonLabel, Counter>,
    /// Client requests, by kind (what any server sees of a client, so that it can be
    /// checked from outside which actions cause which requests).
    pub client_requests: Family<KindLabel, Counter>,
}

/// Label for client request kinds.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    /// submit, register, directory, history, status.
    pub kind: String,
}

impl NetMetrics {
    /// Count a client request of `kind`.
    pub fn client_request(&self, kind: &str) {
        self.client_requests
            .get_or_create(&KindLabel {
                kind: kind.to_string(),
            })
            .inc();
    }

    /// Count a refusal.
    pub fn rejected(&self, reason: &str) {
        self.rejections
            .get_or_create(&ReasonLabel {
                reason: reason.to_string(),
            })
            .inc();
    }
}

/// Raft gauges.
#[derive(Clone, Default)]
pub struct RaftGauges {
    /// Current term.
    pub term: Gauge,
    /// Known leader id, or -1.
    pub leader: Gauge,
    /// Last log index.
    pub last_log_index: Gauge,
    /// Applied index.
    pub applied_index: Gauge,
    /// Snapshot index, or -1.
    pub snapshot_index: Gauge,
    /// Open round.
    pub round: Gauge,
}

/// Share-keeper counters.
#[derive(Clone, Default)]
pub struct KeeperMetrics {
    /// Shares that did not open (a client sealed garbage to us).
    pub open_failures: Counter,
    /// Lists of held shares (`Have`) committed.
    pub haves: Counter,
    /// Reveals committed.
    pub reveals: Counter,
    /// Decided rounds we serve but hold too few shares for (lost in a restart).
    pub cannot_serve: Counter,
    /// Lists or reveals retried because a round still lacked ours.
    pub reveal_retries: Counter,
    /// Bytes of clients' shares held now.
    pub held_bytes: Gauge,
    /// Validity checks made at close, not when the share came (this node did not yet
    /// know the round's layout then).
    pub late_checks: Counter,
}

/// Backup-keeper counters: nothing in them names a backup or a user.
#[derive(Clone, Default, Debug)]
pub struct BackupMetrics {
    /// Backups whose shares we opened and stored.
    pub registrations: Counter,
    /// Refresh deal parts we committed.
    pub deals_sent: Counter,
    /// Refresh deal parts applied (every dealer's).
    pub deals_applied: Counter,
    /// Sub-shares checked against their commitments and added.
    pub verified: Counter,
    /// Failures by reason (bad sub-share, deal that does not open, store, ...).
    pub failures: Family<ReasonLabel, Counter>,
    /// Guesses counted by this server.
    pub guesses: Counter,
    /// Shares handed back after the right tag.
    pub unlocks: Counter,
    /// Tags that did not match.
    pub wrong_passphrases: Counter,
    /// Shares erased (guess limit, or the backup gone).
    pub erasures: Counter,
    /// The refresh epoch.
    pub epoch: Gauge,
    /// Backups we hold a share of.
    pub shares_held: Gauge,
    /// Epoch secrets we hold (ours now, and a next one while our deal is pending).
    pub secrets_held: Gauge,
    /// How long our last deal took to make and commit, in milliseconds.
    pub deal_ms: Gauge,
}

impl BackupMetrics {
    /// Count a failure.
    pub fn failure(&self, reason: &str) {
        self.failures
            .get_or_create(&ReasonLabel {
                reason: reason.to_string(),
            })
            .inc();
    }

    fn register(&self, r: &mut Registry) {
        let counters = [
            (
                "backup_registrations",
                "Backups whose shares this server opened and stored",
                &self.registrations,
            ),
            (
                "backup_deals_sent",
                "Refresh deal parts this server committed",
                &self.deals_sent,
            ),
            (
                "backup_deals_applied",
                "Refresh deal parts applied, from every dealer",
                &self.deals_applied,
            ),
            (
                "backup_verifications",
                "Refresh sub-shares checked against their commitments and added",
                &self.verified,
            ),
            (
                "backup_guesses",
                "Passphrase guesses this server counted through the log",
                &self.guesses,
            ),
            (
                "backup_unlocks",
                "Shares handed back after the right passphrase tag",
                &self.unlocks,
            ),
            (
                "backup_wrong_passphrases",
                "Passphrase tags that did not match",
                &self.wrong_passphrases,
            ),
            (
                "backup_erasures",
                "Shares erased after the guess limit, or with their backup",
                &self.erasures,
            ),
        ];
        for (name, help, c) in counters {
            r.register(name, help, c.clone());
        }
        r.register(
            "backup_failures",
            "Backup-keeper failures, by reason",
            self.failures.clone(),
        );
        r.register(
            "backup_epoch",
            "The backup refresh epoch",
            self.epoch.clone(),
        );
        r.register(
            "backup_shares_held",
            "Backups this server holds a share of",
            self.shares_held.clone(),
        );
        r.register(
            "backup_epoch_secrets_held",
            "Epoch secrets this server holds: its current one, and its next while its deal is pending",
            self.secrets_held.clone(),
        );
        r.register(
            "backup_deal_ms",
            "How long this server's last refresh deal took, in ms",
            self.deal_ms.clone(),
        );
    }
}

/// All of the node's metrics.
#[derive(Clone)]
pub struct NodeMetrics {
    /// The registry (`/metrics` encodes it).
    pub registry: Arc<Mutex<Registry>>,
    mailbox: Family<ActorLabel, Gauge>,
    handled: Family<ActorLabel, Counter>,
    failed: Family<ActorLabel, Counter>,
    /// Network.
    pub net: NetMetrics,
    /// Raft.
    pub raft: RaftGauges,
    /// Commands refused by the state machine, by reason.
    pub rejected_commands: Family<ReasonLabel, Counter>,
    /// Share-keeper counters.
    pub keeper: KeeperMetrics,
    /// Backup-keeper counters.
    pub backup: BackupMetrics,
    /// Rounds by outcome (closed, void, output).
    pub rounds: Family<OutcomeLabel, Counter>,
    /// How outputs were reached (mirrored from the replicated state).
    pub outputs: OutputGauges,
}

/// How outputs were reached, mirrored from the replicated state, so every node reports
/// the same figures.
#[derive(Clone, Default)]
pub struct OutputGauges {
    /// Rounds in which each server's reveal was off the agreed polynomial.
    pub dissent: Family<ServerLabel, Gauge>,
    /// Rounds voided because the reveals disagreed beyond correction.
    pub inconsistent_rounds: Gauge,
    /// Outputs decoded from exactly t+1 reveals (unchecked).
    pub unchecked: Gauge,
    /// Clients left out of decided rounds, by reason (never which client or slot).
    pub excluded: Family<ReasonLabel, Gauge>,
    /// Clients cooling off now.
    pub cooling: Gauge,
}

/// A server, by index.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ServerLabel {
    /// Its index.
    pub server: String,
}

/// Label for round outcomes.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    /// closed, void or output.
    pub outcome: String,
}

impl NodeMetrics {
    /// Register everything in `registry` (which libp2p has already used); `net` is the
    /// set the network loop was started with.
    pub fn new_with_net(mut registry: Registry, net: NetMetrics) -> Self {
        let mailbox = Family::<ActorLabel, Gauge>::default();
        let handled = Family::<ActorLabel, Counter>::default();
        let failed = Family::<ActorLabel, Counter>::default();
        let raft = RaftGauges::default();
        let rejected_commands = Family::<ReasonLabel, Counter>::default();
        let keeper = KeeperMetrics::default();
        let backup = BackupMetrics::default();
        let rounds = Family::<OutcomeLabel, Counter>::default();
        let outputs = OutputGauges::default();
        let r = registry.sub_registry_with_prefix("chorus");
        r.register(
            "reveal_dissent_rounds",
            "Rounds in which a server's reveal was off the polynomial the others agreed on",
            outputs.dissent.clone(),
        );
        r.register(
            "rounds_inconsistent",
            "Rounds voided because their reveals disagreed beyond correction",
            outputs.inconsistent_rounds.clone(),
        );
        r.register(
            "outputs_unchecked",
            "Outputs decoded from exactly t+1 reveals, with nothing to check them against",
            outputs.unchecked.clone(),
        );
        r.register(
            "clients_excluded",
            "Clients left out of decided rounds, by reason: missing (not listed by every serving server), conflicting (different submissions), bad_proof, inconsistent (shares of different vectors), cooling",
            outputs.excluded.clone(),
        );
        r.register(
            "clients_cooling_off",
            "Clients refused for a while after repeated exclusions",
            outputs.cooling.clone(),
        );
        r.register(
            "validity_late_checks",
            "Validity checks made at close because the round's layout was not known when the share came",
            keeper.late_checks.clone(),
        );
        r.register(
            "rounds",
            "Rounds by outcome: closed, decided (revealing), void (too few lists or clients), output",
            rounds.clone(),
        );
        r.register(
            "share_open_failures",
            "Shares sealed to us that did not open",
            keeper.open_failures.clone(),
        );
        r.register(
            "haves",
            "Lists of held shares this server committed",
            keeper.haves.clone(),
        );
        r.register(
            "reveals",
            "Reveals this server committed",
            keeper.reveals.clone(),
        );
        r.register(
            "reveal_retries",
            "Lists and reveals retried because a round still lacked ours",
            keeper.reveal_retries.clone(),
        );
        r.register(
            "rounds_not_served",
            "Decided rounds this server serves but lacks shares for (lost in a restart)",
            keeper.cannot_serve.clone(),
        );
        r.register(
            "share_keeper_held_bytes",
            "Bytes of clients' shares held until their round is decided",
            keeper.held_bytes.clone(),
        );
        r.register(
            "actor_mailbox_depth",
            "Messages waiting in each actor's mailbox",
            mailbox.clone(),
        );
        r.register(
            "actor_messages_handled",
            "Messages each actor handled",
            handled.clone(),
        );
        r.register(
            "actor_messages_failed",
            "Messages whose handling failed",
            failed.clone(),
        );
        r.register(
            "client_requests",
            "Client requests, by kind",
            net.client_requests.clone(),
        );
        r.register(
            "peers_connected",
            "Connected libp2p peers",
            net.peers_connected.clone(),
        );
        r.register(
            "connections_opened",
            "Connections established since start",
            net.connections_opened.clone(),
        );
        r.register(
            "gossip_publish_failures",
            "Gossip publishes that failed",
            net.publish_failures.clone(),
        );
        r.register(
            "network_rejections",
            "Inbound traffic refused, by reason",
            net.rejections.clone(),
        );
        r.register("raft_term", "Current Raft term", raft.term.clone());
        r.register(
            "raft_leader",
            "Known Raft leader id (-1 if none)",
            raft.leader.clone(),
        );
        r.register(
            "raft_last_log_index",
            "Last Raft log index",
            raft.last_log_index.clone(),
        );
        r.register(
            "raft_applied_index",
            "Last applied Raft log index",
            raft.applied_index.clone(),
        );
        r.register(
            "raft_snapshot_index",
            "Last snapshot's log index (-1 if none)",
            raft.snapshot_index.clone(),
        );
        r.register(
            "round_open",
            "The round accepting submissions",
            raft.round.clone(),
        );
        backup.register(r);
        r.register(
            "commands_rejected",
            "Commands refused by the state machine, by reason",
            rejected_commands.clone(),
        );
        Self {
            registry: Arc::new(Mutex::new(registry)),
            mailbox,
            handled,
            failed,
            net,
            raft,
            rejected_commands,
            keeper,
            backup,
            rounds,
            outputs,
        }
    }

    /// Count a round outcome.
    pub fn round_outcome(&self, outcome: &str) {
        self.rounds
            .get_or_create(&OutcomeLabel {
                outcome: outcome.to_string(),
            })
            .inc();
    }

    /// Counters for one actor.
    pub fn actor(&self, name: &'static str) -> ActorStats {
        let s = ActorStats {
            name,
            mailbox: self.mailbox.clone(),
            handled: self.handled.clone(),
            failed: self.failed.clone(),
        };
        // Create the series so /metrics shows every actor from the start.
        let _ = s.snapshot();
        s
    }

    /// Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let reg = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        let _ = prometheus_client::encoding::text::encode(&mut out, &reg);
        out
    }
}
