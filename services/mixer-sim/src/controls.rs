//! Every fault the simulator can be given, in one place for the admin API and [`SimHandle`]:
//! pods and regions (the fleet), endpoints (a front's own fault, its listener the network's),
//! nodes, and clients cut off (the network).
//!
//! [`SimHandle`]: crate::SimHandle

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use serde::Serialize;

use crate::error::SimError;
use crate::fault::Fault;
use crate::fleet::Fleet;
use crate::net_fault::{ClientCut, EndpointFault};
use crate::network::Network;
use crate::node::NodeFault;

/// Every fault in force, by kind; what `GET /faults` answers.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FaultList {
    /// Pods with a fault (set on the pod or its region).
    pub pods: BTreeMap<String, Fault>,
    /// Endpoint fronts with a fault of their own.
    pub endpoints: BTreeMap<String, EndpointFault>,
    /// Nodes with pinned figures.
    pub nodes: BTreeMap<String, NodeFault>,
    /// Clients cut off, by address.
    pub clients: BTreeMap<IpAddr, ClientCut>,
}

#[derive(Debug, Clone)]
pub(crate) struct Controls {
    pub fleet: Arc<Fleet>,
    pub network: Arc<Network>,
}

impl Controls {
    /// Sets a front's fault; `down` closes its listener (or re-opens it). A front that cannot
    /// listen again keeps `down` and its port, and the error says so.
    pub(crate) fn set_endpoint_fault(&self, name: &str, fault: EndpointFault) -> Result<(), SimError> {
        fault.validate()?;
        self.fleet.front(name)?;
        let reopened = self.network.set_front_down(name, fault.down);
        let fault = match &reopened {
            Err(_) => EndpointFault { down: true, ..fault },
            Ok(()) => fault,
        };
        self.fleet.set_endpoint_fault(name, fault)?;
        reopened
    }

    pub(crate) fn set_client_cut(&self, client: IpAddr, cut: ClientCut) -> Result<(), SimError> {
        self.network.set_cut(client, cut)
    }

    /// Clears every fault; every killed endpoint listens again. The first endpoint that could
    /// not is the error (it, and any other such, stays down).
    pub(crate) fn clear_faults(&self) -> Result<(), SimError> {
        let down = self.network.fronts_down();
        self.fleet.clear_faults();
        self.network.clear_cuts();
        let mut first_error = None;
        for front in down {
            if let Err(error) = self.network.set_front_down(&front, false) {
                let stays = EndpointFault { down: true, ..EndpointFault::default() };
                let _ = self.fleet.set_endpoint_fault(&front, stays);
                first_error.get_or_insert(error);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    pub(crate) fn faults(&self) -> FaultList {
        FaultList {
            pods: self.fleet.faults(),
            endpoints: self.fleet.endpoint_faults(),
            nodes: self.fleet.node_faults(),
            clients: self.network.cut_clients(),
        }
    }
}
