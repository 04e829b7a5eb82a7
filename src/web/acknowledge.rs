//! The operator's Acknowledge button on a delivery's page: acknowledges the
//! alert group of the delivery's notification exactly as an acknowledge link
//! would (Alertmanager silences, or for checkit's own checks no more
//! reminders; the note to the others), with the operator as author.

use super::access::Posted;
use super::{TokenForm, Ui};
use crate::bridge::ack::AckOutcome;
use crate::bridge::store::HistoryQuery;
use axum::extract::{Form, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use std::sync::Arc;

/// `POST /ui/deliveries/{id}/acknowledge`.
pub(super) async fn acknowledge(
    State(ui): State<Arc<Ui>>,
    Path(id): Path<i64>,
    post: Posted<Form<TokenForm>>,
) -> Response {
    let back = format!("{}ui/deliveries/{id}", ui.base());
    if let Some(page) = post.refusal(&ui, &post.body.csrf, &back) {
        return page;
    }
    let visitor = post.visitor;
    let Some(bridge) = ui.services.bridge() else {
        return ui.error(&visitor, StatusCode::NOT_FOUND, "The alert bridge is not configured.", &back);
    };
    let unavailable = |err: &dyn std::fmt::Display| {
        ui.error(&visitor, StatusCode::SERVICE_UNAVAILABLE, &format!("The store cannot be read: {err}"), &back)
    };
    let entry = match bridge.store().history(HistoryQuery { id: Some(id), limit: 1, ..HistoryQuery::default() }).await {
        Ok(page) => match page.items.into_iter().next() {
            Some(entry) => entry,
            None => {
                return ui.error(&visitor, StatusCode::NOT_FOUND, &format!("There is no delivery {id}."), &back);
            }
        },
        Err(err) => return unavailable(&err),
    };
    // Without web-config users everyone is an operator without a name.
    let actor = visitor.user.clone().unwrap_or_else(|| "operator".into());
    let outcome = match bridge.acknowledge(entry.event.notification_id, &actor).await {
        Ok(outcome) => outcome,
        Err(crate::bridge::ack::AckError::NotConfigured) => {
            return ui.error(
                &visitor,
                StatusCode::NOT_FOUND,
                "Acknowledgement is not configured (bridge.acknowledgement).",
                &back,
            );
        }
        Err(crate::bridge::ack::AckError::Storage(err)) => return unavailable(&err),
    };
    match outcome {
        AckOutcome::Acknowledged { .. } | AckOutcome::Already { .. } => Redirect::to(&back).into_response(),
        AckOutcome::Resolved { title } => {
            ui.error(&visitor, StatusCode::CONFLICT, &format!("{title} has resolved: nothing to acknowledge."), &back)
        }
        AckOutcome::Gone => ui.error(&visitor, StatusCode::GONE, "The notification is no longer kept.", &back),
        AckOutcome::Refused { failures } => ui.error(
            &visitor,
            StatusCode::BAD_GATEWAY,
            &format!("No Alertmanager accepted the silence: {}", failures.join("; ")),
            &back,
        ),
    }
}
