//! The AWS emulator keeps DynamoDB's guarantees that the other tests lean on.

use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, ConditionCheck, KeySchemaElement, KeyType,
    Put, PutRequest, ScalarAttributeType, TransactWriteItem, WriteRequest,
};
use aws_sdk_dynamodb::Client;
use calsync_devstack::emulator::Emulator;

const TABLE: &str = "rollback";

fn key(pk: &str, sk: &str) -> std::collections::HashMap<String, AttributeValue> {
    [
        ("pk".to_owned(), AttributeValue::S(pk.into())),
        ("sk".to_owned(), AttributeValue::S(sk.into())),
    ]
    .into()
}

async fn create_table(ddb: &Client) {
    let attr = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .unwrap()
    };
    let schema = |name: &str, kind| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .unwrap()
    };
    ddb.create_table()
        .table_name(TABLE)
        .attribute_definitions(attr("pk"))
        .attribute_definitions(attr("sk"))
        .key_schema(schema("pk", KeyType::Hash))
        .key_schema(schema("sk", KeyType::Range))
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .unwrap();
}

async fn batch_put(ddb: &Client, items: Vec<std::collections::HashMap<String, AttributeValue>>) {
    for chunk in items.chunks(25) {
        let requests = chunk
            .iter()
            .map(|item| {
                let put = PutRequest::builder().set_item(Some(item.clone())).build();
                WriteRequest::builder().put_request(put.unwrap()).build()
            })
            .collect();
        ddb.batch_write_item()
            .request_items(TABLE, requests)
            .send()
            .await
            .unwrap();
    }
}

/// A transaction that fails undoes its own writes and nothing else: writes other clients made
/// to the same table meanwhile stay. (moto restored a snapshot of every table it named, which
/// lost concurrent writes of other tests: a sync's lease and event counts among them.)
#[tokio::test]
async fn a_failed_transaction_undoes_only_its_own_writes() {
    let emulator = tokio::task::spawn_blocking(Emulator::start)
        .await
        .unwrap()
        .expect("the AWS emulator");
    let ddb = Client::new(&calsync_devstack::local_sdk_config(&emulator.endpoint).await);
    create_table(&ddb).await;
    // Items written before a big table's bulk: moto copied them first, so writes to them while
    // it copied the bulk were lost when it restored the copy.
    let writes = 200;
    let early = (0..writes)
        .map(|i| key("early", &format!("{i:03}")))
        .collect::<Vec<_>>();
    batch_put(&ddb, early.clone()).await;
    batch_put(&ddb, vec![key("counter", "c")]).await;
    let bulk = (0..3000)
        .map(|i| {
            let mut item = key("bulk", &format!("{i:04}"));
            item.insert("payload".into(), AttributeValue::S("x".repeat(200)));
            item
        })
        .collect();
    batch_put(&ddb, bulk).await;

    let failing = {
        let ddb = ddb.clone();
        tokio::spawn(async move {
            for round in 0..25 {
                let put = Put::builder()
                    .table_name(TABLE)
                    .set_item(Some(key("doomed", &round.to_string())))
                    .build()
                    .unwrap();
                let check = ConditionCheck::builder()
                    .table_name(TABLE)
                    .set_key(Some(key("absent", "x")))
                    .condition_expression("attribute_exists(pk)")
                    .build()
                    .unwrap();
                let result = ddb
                    .transact_write_items()
                    .transact_items(TransactWriteItem::builder().put(put).build())
                    .transact_items(TransactWriteItem::builder().condition_check(check).build())
                    .send()
                    .await;
                assert!(result.is_err(), "the condition cannot hold");
            }
        })
    };
    for row in &early {
        ddb.update_item()
            .table_name(TABLE)
            .set_key(Some(row.clone()))
            .update_expression("SET v = :one")
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .send()
            .await
            .unwrap();
        ddb.update_item()
            .table_name(TABLE)
            .set_key(Some(key("counter", "c")))
            .update_expression("ADD n :one")
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .send()
            .await
            .unwrap();
    }
    failing.await.unwrap();

    let updated = ddb
        .query()
        .table_name(TABLE)
        .key_condition_expression("pk = :pk")
        .filter_expression("v = :one")
        .expression_attribute_values(":pk", AttributeValue::S("early".into()))
        .expression_attribute_values(":one", AttributeValue::N("1".into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .count;
    assert_eq!(updated, writes, "every concurrent update kept");
    let doomed = ddb
        .get_item()
        .table_name(TABLE)
        .set_key(Some(key("doomed", "0")))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item;
    assert!(doomed.is_none(), "no failed transaction's put kept");
    let counter = ddb
        .get_item()
        .table_name(TABLE)
        .set_key(Some(key("counter", "c")))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert_eq!(counter["n"], AttributeValue::N(writes.to_string()));
}
