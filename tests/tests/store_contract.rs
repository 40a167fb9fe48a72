//! The store contract suite against the in-memory store.

mod memory {
    integration_tests::store_contract_tests!(token_service::store::memory::MemoryStore::new());
}
