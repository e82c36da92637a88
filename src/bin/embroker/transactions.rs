//! `embroker transactions`: list and describe transactional ids, the
//! `kafka-transactions.sh list` and `describe` verbs over `Broker::list_transactions` and
//! `Broker::describe_transaction`.
//!
//! Like every verb that opens the directory, it opens a broker: a transaction left open by a
//! process that died is aborted by that open (as the coordinator of a restarted Kafka broker
//! would), and is shown as such.

use std::io::Write;

use clap::Subcommand;
use embroker::TransactionDescription;
use serde_json::{json, Value};

use crate::output::{print_json, Table};
use crate::{CmdResult, Ctx};

/// The `transactions` subcommands.
#[derive(Subcommand)]
pub enum TransactionsCmd {
    /// List transactional ids with their producer id and state.
    List,
    /// Show a transactional id's producer, epoch, timeout, state and partitions.
    Describe {
        /// The transactional id.
        transactional_id: String,
    },
}

fn to_json(d: &TransactionDescription) -> Value {
    let partitions: Vec<String> = d.partitions.iter().map(ToString::to_string).collect();
    json!({
        "transactional_id": d.transactional_id,
        "producer_id": d.producer_id,
        "producer_epoch": d.producer_epoch,
        "timeout_ms": d.timeout_ms,
        "state": d.state.name(),
        "start_ms": d.start_ms,
        "partitions": partitions,
    })
}

/// Runs a `transactions` subcommand.
pub fn run(ctx: &Ctx, cmd: TransactionsCmd) -> CmdResult {
    let mut out = std::io::stdout().lock();
    match cmd {
        TransactionsCmd::List => {
            let broker = ctx.open(false)?;
            let all = broker.list_transactions()?;
            broker.close()?;
            if ctx.json {
                print_json(&mut out, &Value::Array(all.iter().map(to_json).collect()))?;
            } else {
                let mut t = Table::new(&["TRANSACTIONAL ID", "PRODUCER ID", "STATE"]);
                for d in all {
                    t.row(vec![
                        d.transactional_id,
                        d.producer_id.to_string(),
                        d.state.name().to_string(),
                    ]);
                }
                t.print(&mut out)?;
            }
        }
        TransactionsCmd::Describe { transactional_id } => {
            let broker = ctx.open(false)?;
            let found = broker.describe_transaction(&transactional_id)?;
            broker.close()?;
            let Some(d) = found else {
                return Err(format!("unknown transactional id {transactional_id:?}").into());
            };
            if ctx.json {
                print_json(&mut out, &to_json(&d))?;
            } else {
                let mut t = Table::new(&[
                    "TRANSACTIONAL ID",
                    "PRODUCER ID",
                    "EPOCH",
                    "TIMEOUT MS",
                    "STATE",
                    "START MS",
                    "PARTITIONS",
                ]);
                let partitions: Vec<String> =
                    d.partitions.iter().map(ToString::to_string).collect();
                t.row(vec![
                    d.transactional_id,
                    d.producer_id.to_string(),
                    d.producer_epoch.to_string(),
                    d.timeout_ms.to_string(),
                    d.state.name().to_string(),
                    d.start_ms.to_string(),
                    partitions.join(","),
                ]);
                t.print(&mut out)?;
            }
        }
    }
    out.flush()?;
    Ok(true)
}
