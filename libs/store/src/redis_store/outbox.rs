//! [`OutboxStore`] for [`RedisStore`]: three hashes beside the lease, under its hash tag, so
//! that every fenced write (check the token, then set and delete fields) is one atomic script
//! on one slot. The outbox's order is each delivery's `created_ms` and id.

use async_trait::async_trait;
use mixmon_model::alert::dispatch::GroupState;

use super::alerts::{arg, decode_all, encode, LEASE};
use crate::alerts::{CommitOutcome, Lease};
use crate::outbox::{Delivery, IntegrationStatus, OutboxStore};
use crate::{RedisStore, StoreError};

const GROUPS: &str = "mixmon:v1:alerts:{alerts}:groups";
const OUTBOX: &str = "mixmon:v1:alerts:{alerts}:outbox";
const INTEGRATIONS: &str = "mixmon:v1:alerts:{alerts}:integrations";

/// KEYS: lease, then the hashes written. ARGV: token, then operations: `S <key index> <field>
/// <value>` or `D <key index> <field>`. Nothing is written unless the token is the lease's.
const FENCED_WRITE: &str = r"
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then return 0 end
local i = 2
while i <= #ARGV do
  local key = KEYS[tonumber(ARGV[i + 1])]
  if ARGV[i] == 'S' then
    redis.call('HSET', key, ARGV[i + 2], ARGV[i + 3])
    i = i + 4
  else
    redis.call('HDEL', key, ARGV[i + 2])
    i = i + 3
  end
end
return 1
";

/// One fenced write's operations; key indexes are 1-based into `[LEASE, GROUPS, OUTBOX, INTEGRATIONS]`.
struct Ops(Vec<Vec<u8>>);

impl Ops {
    fn new(lease: &Lease) -> Ops {
        Ops(vec![arg(lease.token)])
    }

    fn set(&mut self, key: u8, field: &str, value: String) {
        self.0.extend([arg("S"), arg(key), arg(field), value.into_bytes()]);
    }

    fn delete(&mut self, key: u8, field: &str) {
        self.0.extend([arg("D"), arg(key), arg(field)]);
    }
}

const KEY_GROUPS: u8 = 2;
const KEY_OUTBOX: u8 = 3;
const KEY_INTEGRATIONS: u8 = 4;

impl RedisStore {
    async fn fenced_write(&self, what: &str, ops: Ops) -> Result<CommitOutcome, StoreError> {
        let written: i64 = self.script(what, FENCED_WRITE, &[LEASE, GROUPS, OUTBOX, INTEGRATIONS], ops.0).await?;
        Ok(if written == 1 { CommitOutcome::Committed } else { CommitOutcome::Fenced })
    }

    async fn values(&self, what: &str, key: &str) -> Result<Vec<Vec<u8>>, StoreError> {
        self.run(what, key, redis::cmd("HVALS").arg(key).clone()).await
    }
}

#[async_trait]
impl OutboxStore for RedisStore {
    async fn load_groups(&self) -> Result<Vec<GroupState>, StoreError> {
        Ok(decode_all(GROUPS, &self.values("load notification groups", GROUPS).await?))
    }

    async fn commit_dispatch(
        &self,
        lease: &Lease,
        changed: &[GroupState],
        removed: &[String],
        enqueue: &[Delivery],
    ) -> Result<CommitOutcome, StoreError> {
        let mut ops = Ops::new(lease);
        for id in removed {
            ops.delete(KEY_GROUPS, id);
        }
        for group in changed {
            ops.set(KEY_GROUPS, &group.id(), encode(group)?);
        }
        for delivery in enqueue {
            ops.set(KEY_OUTBOX, &delivery.id, encode(delivery)?);
        }
        self.fenced_write("commit notifications", ops).await
    }

    async fn read_outbox(&self) -> Result<Vec<Delivery>, StoreError> {
        let mut pending: Vec<Delivery> = decode_all(OUTBOX, &self.values("read the outbox", OUTBOX).await?);
        pending.sort_by(|a, b| (a.created_ms, &a.id).cmp(&(b.created_ms, &b.id)));
        Ok(pending)
    }

    async fn settle_deliveries(
        &self,
        lease: &Lease,
        done: &[String],
        put: &[Delivery],
        statuses: &[IntegrationStatus],
    ) -> Result<CommitOutcome, StoreError> {
        let mut ops = Ops::new(lease);
        for id in done {
            ops.delete(KEY_OUTBOX, id);
        }
        for delivery in put {
            ops.set(KEY_OUTBOX, &delivery.id, encode(delivery)?);
        }
        for status in statuses {
            ops.set(KEY_INTEGRATIONS, &status.integration, encode(status)?);
        }
        self.fenced_write("settle deliveries", ops).await
    }

    async fn read_integrations(&self) -> Result<Vec<IntegrationStatus>, StoreError> {
        let mut all: Vec<IntegrationStatus> =
            decode_all(INTEGRATIONS, &self.values("read integrations", INTEGRATIONS).await?);
        all.sort_by(|a, b| a.integration.cmp(&b.integration));
        Ok(all)
    }
}
