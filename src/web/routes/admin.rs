//! The admin routes that change or describe the box: `/api/import` (Master.csv upload),
//! `/api/config` (the settings page) and `/api/setup-help`. The role check is done by the
//! router before these run.

use serde_json::{json, Value};

use super::{backend_error, bad_param, App, Request, Response};
use crate::filter::{Filter, Page, Sort};
use crate::import::master_csv::Columns;
use crate::web::json::listing_record;
use crate::web::query::Params;
use crate::web::{settings, setup, BackendError};

impl App {
    /// `POST /api/import?pbx=NAME[&usegmtime=1][&columns=auto|none|uniqueid,userfield,…]`
    /// with Master.csv as the body: the import report as JSON.
    pub(super) fn import(&self, req: &Request) -> Response {
        let params = match Params::parse(&req.query, &[&["pbx", "usegmtime", "columns"]]) {
            Ok(p) => p,
            Err(e) => return bad_param(&e),
        };
        let Some(pbx) = params.get("pbx").filter(|p| !p.is_empty()) else {
            return Response::error(
                400,
                Some("pbx"),
                "pbx: name the [[pbx]] the file comes from",
            );
        };
        let gmt = match params.get("usegmtime").unwrap_or("0") {
            "1" | "true" | "yes" | "on" => true,
            "0" | "false" | "no" | "off" | "" => false,
            other => {
                return Response::error(
                    400,
                    Some("usegmtime"),
                    &format!("usegmtime: {other:?} is not 1 or 0"),
                )
            }
        };
        let columns = match Columns::parse(params.get("columns").unwrap_or("auto")) {
            Ok(c) => c,
            Err(e) => return Response::error(400, Some("columns"), &format!("columns: {e}")),
        };
        let layout = crate::import::master_csv::CsvLayout { columns, gmt };
        match self.backend.import_csv(pbx, &req.body, layout) {
            Ok(report) => match serde_json::to_value(&report) {
                Ok(v) => Response::json(200, &v),
                Err(e) => Response::error(500, None, &e.to_string()),
            },
            Err(e) => backend_error(&e),
        }
    }

    pub(super) fn config_get(&self) -> Response {
        match settings::config_view(&self.backend.config_text()) {
            Ok((config, secret_set)) => Response::json(
                200,
                &json!({
                    "config": config,
                    "secretSet": secret_set,
                    "fields": settings::fields(),
                    "tables": settings::tables(),
                    "restart": {
                        "pending": self.backend.pending_restart().into_iter()
                            .map(|(field, label)| json!({"field": field, "label": label}))
                            .collect::<Vec<_>>(),
                    },
                }),
            ),
            Err(e) => Response::error(500, Some(&e.field), &e.to_string()),
        }
    }

    /// `PUT /api/config`: JSON (`{"config": {...}}` or the bare tables, as GET gives them) or
    /// a TOML document; applied onto the current file, checked, saved and applied live.
    pub(super) fn config_put(&self, req: &Request) -> Response {
        let text = match std::str::from_utf8(&req.body) {
            Ok(t) => t,
            Err(_) => return Response::error(400, Some("body"), "body: not UTF-8"),
        };
        let changes: Value = match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(mut m)) => match m.remove("config") {
                Some(c) => c,
                None => Value::Object(m),
            },
            Ok(_) => return Response::error(400, Some("body"), "body: expected a JSON object"),
            Err(json_err) => match text.parse::<toml_edit::DocumentMut>() {
                Ok(doc) => toml_doc_to_json(&doc),
                Err(_) => {
                    return Response::error(
                        400,
                        Some("body"),
                        &format!("body: neither JSON nor TOML ({json_err})"),
                    )
                }
            },
        };
        let new_text = match settings::apply_changes(&self.backend.config_text(), &changes) {
            Ok(t) => t,
            Err(e) => return field_error(&e.field, &e.message),
        };
        match self.backend.apply_config(&new_text) {
            Ok(()) => {
                tracing::info!(target: "cdrbox::web", peer = %req.peer, "settings saved");
                self.config_get()
            }
            Err(BackendError::Invalid { field, message }) => field_error(&field, &message),
            Err(e) => backend_error(&e),
        }
    }

    pub(super) fn setup_help(&self) -> Response {
        let status = self.backend.status();
        let text = self.backend.config_text();
        // The checks need a sample, not the bytes: bounded copies (500 × 16 KiB at most).
        let mut recent = Vec::new();
        let _ = self.backend.query_each(
            &Filter::default(),
            Sort::StartDesc,
            Page {
                limit: 500,
                offset: 0,
            },
            &mut |r| {
                recent.push(listing_record(r).0);
                Ok(())
            },
        );
        let pbx: Vec<Value> = setup::pbx_list(&text)
            .iter()
            .map(|p| {
                json!({
                    "name": p.name, "host": p.host, "port": p.port, "username": p.username,
                    "managerConf": setup::manager_conf(p, status.ip_address.as_deref()),
                })
            })
            .collect();
        Response::json(
            200,
            &json!({
                "pbx": pbx,
                "cdrManagerConf": setup::cdr_manager_conf(),
                "cdrConf": setup::cdr_conf(),
                "checks": setup::checks(&status, &recent),
            }),
        )
    }
}

/// A settings problem: `error` names the key once (`pbx[0].port: 0 is not a port number
/// (1–65535)`), `param` is the key, `detail` the sentence without it (for beside the field).
fn field_error(field: &str, detail: &str) -> Response {
    Response::json(
        400,
        &json!({"error": format!("{field}: {detail}"), "param": field, "detail": detail}),
    )
}

fn toml_doc_to_json(doc: &toml_edit::DocumentMut) -> Value {
    // Secrets in an uploaded TOML are wanted (that is how a script sets one): keep them.
    fn item(i: &toml_edit::Item) -> Value {
        match i {
            toml_edit::Item::Value(v) => value(v),
            toml_edit::Item::Table(t) => {
                Value::Object(t.iter().map(|(k, v)| (k.to_string(), item(v))).collect())
            }
            toml_edit::Item::ArrayOfTables(a) => Value::Array(
                a.iter()
                    .map(|t| {
                        Value::Object(t.iter().map(|(k, v)| (k.to_string(), item(v))).collect())
                    })
                    .collect(),
            ),
            toml_edit::Item::None => Value::Null,
        }
    }
    fn value(v: &toml_edit::Value) -> Value {
        use toml_edit::Value as T;
        match v {
            T::String(s) => json!(s.value()),
            T::Integer(i) => json!(i.value()),
            T::Float(f) => json!(f.value()),
            T::Boolean(b) => json!(b.value()),
            T::Datetime(d) => json!(d.value().to_string()),
            T::Array(a) => Value::Array(a.iter().map(value).collect()),
            T::InlineTable(t) => {
                Value::Object(t.iter().map(|(k, v)| (k.to_string(), value(v))).collect())
            }
        }
    }
    item(doc.as_item())
}
