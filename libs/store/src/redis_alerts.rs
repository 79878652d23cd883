//! [`AlertStore`] for [`RedisStore`]. Not built yet: every method fails with "this store keeps
//! no alert state" (the trait's defaults), so alerting runs on the memory store only until the
//! Redis implementation lands.

use crate::alerts::AlertStore;
use crate::RedisStore;

impl AlertStore for RedisStore {}
