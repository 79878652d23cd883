//! placeholder
pub struct RedisStore;
pub struct RedisStoreConfig;
