//! `POST /v1/query`: the request read and checked, the query run in a session of the
//! current replica within the limits, and its result streamed into the response.

use super::replica::{Current, Replica};
use super::{
    MAX_BODY, Options, Outcome, Reply, Token, encode, error_reply, send, serve_error, session,
};
use duckdb::Connection;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// `POST /v1/query` with `{"sql": "...", "params": [...], "format": "json" | "csv" |
/// "arrow" | "parquet"}`.
pub(super) fn query(
    mut exchange: crate::http::Exchange,
    options: &Options,
    current: &Current,
    token: Option<&Token>,
    running: &Arc<AtomicUsize>,
) -> Outcome {
    let body = match exchange.body(MAX_BODY) {
        Ok(b) => b,
        Err(413) => {
            return send(
                exchange,
                error_reply(413, "the request body is larger than 1 MiB"),
            );
        }
        Err(411) => {
            return send(
                exchange,
                error_reply(411, "send the body with a Content-Length"),
            );
        }
        Err(status) => {
            return send(
                exchange,
                error_reply(status, "the request body could not be read"),
            );
        }
    };
    let Some(slot) = Slot::take(running, options.max_concurrent) else {
        return send(
            exchange,
            error_reply(503, "too many queries are running; retry shortly"),
        );
    };
    match prepare(&body, options, current, token) {
        Ok((run, conn, replica)) => run.answer(&conn, &replica.build_id, exchange, slot),
        Err(reply) => send(exchange, reply),
    }
}

/// The query a request body asks for, on a session of the current replica, checked
/// against the token's schemas; or the error reply.
pub(super) fn prepare(
    body: &[u8],
    options: &Options,
    current: &Current,
    token: Option<&Token>,
) -> std::result::Result<(Run, Connection, Arc<Replica>), Reply> {
    let Ok(request) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Err(error_reply(
            400,
            "the body is not JSON; send {\"sql\": \"select ...\"}",
        ));
    };
    let Some(sql) = request.get("sql").and_then(|s| s.as_str()) else {
        return Err(error_reply(400, "the body has no \"sql\" text"));
    };
    let params: Vec<duckdb::types::Value> = match request.get("params") {
        None | Some(serde_json::Value::Null) => Vec::new(),
        Some(serde_json::Value::Array(items)) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                out.push(match item {
                    serde_json::Value::Null => duckdb::types::Value::Null,
                    serde_json::Value::Bool(b) => duckdb::types::Value::Boolean(*b),
                    serde_json::Value::Number(n) => match n.as_i64() {
                        Some(i) => duckdb::types::Value::BigInt(i),
                        None => duckdb::types::Value::Double(n.as_f64().unwrap_or(f64::NAN)),
                    },
                    serde_json::Value::String(s) => duckdb::types::Value::Text(s.clone()),
                    _ => {
                        return Err(error_reply(
                            400,
                            "params are numbers, strings, booleans or null",
                        ));
                    }
                });
            }
            out
        }
        Some(_) => return Err(error_reply(400, "params is a list of values")),
    };
    let format = match request.get("format") {
        None | Some(serde_json::Value::Null) => Some(encode::Format::Json),
        Some(f) => f.as_str().and_then(encode::Format::parse),
    };
    let Some(format) = format else {
        return Err(error_reply(400, "format is json, csv, arrow or parquet"));
    };
    let Some(replica) = current.get() else {
        return Err(error_reply(503, "no replica is loaded yet"));
    };
    let conn = session(&replica)?;
    if let Some(token) = token
        && let Err((status, why)) = token.check(&conn, sql)
    {
        return Err(error_reply(status, &why));
    }
    let run = Run {
        sql: sql.to_string(),
        params,
        format,
        max_rows: options.max_rows,
        timeout: options.timeout,
    };
    Ok((run, conn, replica))
}

/// One of the `--max-concurrent` places for a query, held until its result is released
/// (the body written, or the query failed).
pub(super) struct Slot(Arc<AtomicUsize>);

impl Slot {
    pub(super) fn take(running: &Arc<AtomicUsize>, max: usize) -> Option<Slot> {
        if running.fetch_add(1, Ordering::SeqCst) >= max {
            running.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        Some(Slot(running.clone()))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// One query, as the request asked for it.
pub(super) struct Run {
    sql: String,
    params: Vec<duckdb::types::Value>,
    format: encode::Format,
    max_rows: usize,
    timeout: Duration,
}

impl Run {
    /// Runs the query and answers it. The headers go out once DuckDB holds the whole
    /// result, so a failing query gets an error reply; the body is written as it is
    /// encoded. Returns the status and the rows sent, or why the body was cut.
    fn answer(
        self,
        conn: &Connection,
        build_id: &str,
        exchange: crate::http::Exchange,
        slot: Slot,
    ) -> Outcome {
        // A query that outlives the timeout is interrupted.
        let interrupt = conn.interrupt_handle();
        let (done, wait) = std::sync::mpsc::channel::<()>();
        let timeout = self.timeout;
        let watchdog = std::thread::spawn(move || {
            if wait.recv_timeout(timeout) == Err(std::sync::mpsc::RecvTimeoutError::Timeout) {
                interrupt.interrupt();
                return true;
            }
            false
        });
        let format = self.format;
        let encoder = std::cell::RefCell::new(None::<encode::Encoder>);
        let rows = std::cell::Cell::new(0usize);
        let mut exchange = Some(exchange);
        // Once DuckDB holds the whole result, the headers are sent with its row count. The
        // time limit is for running the query, not for a client reading it slowly (the
        // connection's own timeout covers that).
        let mut open = |count: usize, truncated: bool| {
            let _ = done.send(());
            let exchange = exchange
                .take()
                .ok_or_else(|| serve_error("the result started twice"))?;
            Ok(exchange.stream(
                200,
                &[
                    ("Content-Type", format.content_type()),
                    ("X-Lakeflow-Build", build_id),
                    ("X-Lakeflow-Rows", &count.to_string()),
                    ("X-Lakeflow-Truncated", &truncated.to_string()),
                ],
            ))
        };
        let limit = Some(self.max_rows);
        let result = match format {
            encode::Format::Json | encode::Format::Csv => crate::query::for_each_row(
                conn,
                &self.sql,
                limit,
                &self.params,
                |names, count, truncated| {
                    let out = open(count, truncated)?;
                    let made = encode::Encoder::rows(format, out, build_id, names, truncated)?;
                    *encoder.borrow_mut() = Some(made);
                    Ok(())
                },
                |cells| {
                    rows.set(rows.get() + 1);
                    match encoder.borrow_mut().as_mut() {
                        Some(e) => e.row(&cells),
                        None => Ok(()),
                    }
                },
            ),
            encode::Format::Arrow | encode::Format::Parquet => crate::query::for_each_batch(
                conn,
                &self.sql,
                limit,
                &self.params,
                |schema, count, truncated| {
                    let out = open(count, truncated)?;
                    let made = encode::Encoder::batches(format, out, &schema, build_id)?;
                    *encoder.borrow_mut() = Some(made);
                    Ok(())
                },
                |batch| {
                    rows.set(rows.get() + batch.num_rows());
                    match encoder.borrow_mut().as_mut() {
                        Some(e) => e.batch(batch),
                        None => Ok(()),
                    }
                },
            ),
        };
        // DuckDB's result is gone: the slot is free before the client can see the end of
        // this response (or an error) and send its next query.
        drop(slot);
        let _ = done.send(());
        let timed_out = watchdog.join().unwrap_or(false);
        let encoder = encoder.into_inner();
        match (result, exchange) {
            (Ok(()), None) => match encoder.map(encode::Encoder::finish) {
                Some(Ok(())) => (200, Ok(rows.get())),
                Some(Err(e)) => (200, Err(e.message.clone())),
                None => (200, Err("no result".into())),
            },
            (Ok(()), Some(exchange)) => {
                send(exchange, error_reply(500, "the query gave no result"))
            }
            (Err(e), Some(exchange)) => {
                let reply = if timed_out {
                    error_reply(
                        408,
                        &format!(
                            "the query ran longer than {} s and was stopped",
                            self.timeout.as_secs()
                        ),
                    )
                } else if e.code == "LF606" {
                    error_reply(500, &e.message)
                } else {
                    // Not one SELECT (LF604) or a failing one (LF602): the query's fault.
                    error_reply(400, &e.message)
                };
                send(exchange, reply)
            }
            // The headers went out: dropping the encoder leaves the body without its end.
            (Err(e), None) => {
                drop(encoder);
                (200, Err(e.message.clone()))
            }
        }
    }
}
