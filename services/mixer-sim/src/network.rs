//! The fleet's network: every pod's and front's [`Port`], the clients cut off from all of them,
//! and what a connection is allowed to do at any moment ([`Verdict`]). Changes (a cut, an
//! endpoint killed) are applied to the sockets at once, before the call returns, and announced
//! to every open connection, which then checks its verdict again.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::watch;

use crate::bpf;
use crate::error::SimError;
use crate::net_fault::{ClientCut, CutError, CutMode, MAX_CUT_CLIENTS};
use crate::port::Port;

/// What an open connection may do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Open,
    /// Its client is blackholed: nothing moves until the cut is lifted.
    Paused,
    /// Its client is cut with resets: reset it.
    Reset,
    /// Its listener was closed since it was accepted: it dies with it.
    Closed,
}

#[derive(Debug)]
pub(crate) struct Network {
    pods: Vec<Arc<Port>>,
    fronts: BTreeMap<String, Arc<Port>>,
    cuts: Mutex<BTreeMap<IpAddr, ClientCut>>,
    changes: watch::Sender<u64>,
    /// Where re-opened listeners register; calls may come from outside the runtime.
    runtime: tokio::runtime::Handle,
}

impl Network {
    /// Needs a Tokio runtime (it keeps a handle to it).
    pub(crate) fn new(pods: Vec<Arc<Port>>, fronts: BTreeMap<String, Arc<Port>>) -> Self {
        let (changes, _) = watch::channel(0);
        let runtime = tokio::runtime::Handle::current();
        Self { pods, fronts, cuts: Mutex::new(BTreeMap::new()), changes, runtime }
    }

    fn cuts(&self) -> MutexGuard<'_, BTreeMap<IpAddr, ClientCut>> {
        self.cuts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn ports(&self) -> impl Iterator<Item = &Arc<Port>> {
        self.pods.iter().chain(self.fronts.values())
    }

    pub(crate) fn front(&self, name: &str) -> Option<&Arc<Port>> {
        self.fronts.get(name)
    }

    /// A receiver that sees every change from now on.
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    fn announce(&self) {
        self.changes.send_modify(|version| *version += 1);
    }

    /// How a client is cut, if it is.
    pub(crate) fn cut_of(&self, client: IpAddr, port: &Port) -> Option<CutMode> {
        self.cuts().get(&client.to_canonical()).filter(|cut| cut.covers(&port.name)).map(|cut| cut.mode)
    }

    pub(crate) fn verdict(&self, client: IpAddr, port: &Port, generation: u64) -> Verdict {
        if !port.is_current(generation) {
            return Verdict::Closed;
        }
        match self.cut_of(client, port) {
            None => Verdict::Open,
            Some(CutMode::Blackhole) => Verdict::Paused,
            Some(CutMode::Reset) => Verdict::Reset,
        }
    }

    /// The filter every listener runs: `None` while nobody is blackholed.
    fn filter(cuts: &BTreeMap<IpAddr, ClientCut>) -> Option<Vec<bpf::Insn>> {
        // Cuts scoped to some fronts are judged per connection (`verdict`), not in the kernel.
        let blackholed: Vec<IpAddr> = cuts
            .iter()
            .filter(|(_, cut)| cut.mode == CutMode::Blackhole && cut.fronts.is_empty())
            .map(|(ip, _)| *ip)
            .collect();
        (!blackholed.is_empty()).then(|| bpf::drop_sources(&blackholed))
    }

    fn refilter(&self, cuts: &BTreeMap<IpAddr, ClientCut>) {
        let filter = Self::filter(cuts);
        for port in self.ports() {
            if let Err(error) = port.filter(filter.as_deref()) {
                // Blackholed clients are then held after accept: their probes still time out,
                // only later (first byte instead of connect).
                tracing::warn!(port = %port.name, %error, "cannot update the socket filter");
            }
        }
    }

    /// Cuts `client` off every pod and front, or lets it through again.
    pub(crate) fn set_cut(&self, client: IpAddr, cut: ClientCut) -> Result<(), SimError> {
        let client = client.to_canonical();
        let mut cuts = self.cuts();
        if let Some(unknown) = cut.fronts.iter().find(|f| !self.fronts.contains_key(*f)) {
            return Err(CutError::UnknownFront(unknown.clone()).into());
        }
        if cut.cut {
            if !cuts.contains_key(&client) && cuts.len() >= MAX_CUT_CLIENTS {
                return Err(CutError::TooMany.into());
            }
            tracing::info!(%client, ?cut, "client cut set");
            cuts.insert(client, cut);
        } else {
            tracing::info!(%client, "client cut lifted");
            cuts.remove(&client);
        }
        self.refilter(&cuts);
        drop(cuts);
        self.announce();
        Ok(())
    }

    /// The clients cut off now.
    pub(crate) fn cut_clients(&self) -> BTreeMap<IpAddr, ClientCut> {
        self.cuts().clone()
    }

    pub(crate) fn clear_cuts(&self) {
        let mut cuts = self.cuts();
        cuts.clear();
        self.refilter(&cuts);
        drop(cuts);
        self.announce();
    }

    /// Kills (closes) or restarts (re-opens) a front's listener.
    pub(crate) fn set_front_down(&self, front: &str, down: bool) -> Result<(), SimError> {
        let port = self.front(front).ok_or_else(|| SimError::UnknownEndpoint(front.to_owned()))?;
        if down {
            port.close();
        } else {
            let _runtime = self.runtime.enter();
            // Holding the lock orders this open against a concurrent cut's filter update.
            let cuts = self.cuts();
            port.open(Self::filter(&cuts).as_deref()).map_err(|source| SimError::Reopen {
                endpoint: front.to_owned(),
                addr: port.addr,
                source,
            })?;
        }
        self.announce();
        Ok(())
    }

    /// Fronts whose listener is closed now.
    pub(crate) fn fronts_down(&self) -> Vec<String> {
        self.fronts.iter().filter(|(_, port)| !port.is_listening()).map(|(name, _)| name.clone()).collect()
    }

    /// Releases every port, at shutdown.
    pub(crate) fn release(&self) {
        for port in self.ports() {
            port.release();
        }
    }
}
