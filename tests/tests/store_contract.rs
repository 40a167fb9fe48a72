//! The store contract suite, run against both stores.

mod memory {
    integration_tests::store_contract_tests!(token_service::store::memory::MemoryStore::new());
}

mod dynamodb {
    integration_tests::store_contract_tests!(integration_tests::dynamo::fresh_store().await);
}
