//! Which handlers a function links. Each API binary runs one [`Service`], whose dispatch names
//! only its route group's handlers; with the route group chosen at compile time, the linker drops
//! every other handler and what only they use (docs/decisions.md 36). [`ALL`] serves every route,
//! for tests and tools.

use futures_util::future::BoxFuture;

use super::routes::{Operation, RouteGroup};
use super::{
    accounts, calendars, changes, connections, events, feeds, openapi, push, schedule, webhooks,
};
use super::{ApiRequest, ApiResponse};
use crate::app::App;
use crate::error::{ApiError, ApiResult};

type Dispatch = for<'a> fn(&'a App, &'a Call<'a>) -> BoxFuture<'a, ApiResult<ApiResponse>>;

pub struct Service {
    /// The routes answered (`None`: all of them).
    pub(super) group: Option<RouteGroup>,
    dispatch: Dispatch,
}

impl Service {
    pub(super) async fn dispatch(&self, app: &App, call: &Call<'_>) -> ApiResult<ApiResponse> {
        (self.dispatch)(app, call).await
    }
}

pub static ACCOUNTS: Service = Service {
    group: Some(RouteGroup::Accounts),
    dispatch: |app, call| Box::pin(accounts_routes(app, call)),
};
pub static CALENDARS: Service = Service {
    group: Some(RouteGroup::Calendars),
    dispatch: |app, call| Box::pin(calendars_routes(app, call)),
};
pub static EVENTS: Service = Service {
    group: Some(RouteGroup::Events),
    dispatch: |app, call| Box::pin(events_routes(app, call)),
};
pub static CONNECTIONS: Service = Service {
    group: Some(RouteGroup::Connections),
    dispatch: |app, call| Box::pin(connections_routes(app, call)),
};
pub static OAUTH_CALLBACK: Service = Service {
    group: Some(RouteGroup::OAuthCallback),
    dispatch: |app, call| Box::pin(oauth_callback_routes(app, call)),
};
pub static CHANGES: Service = Service {
    group: Some(RouteGroup::Changes),
    dispatch: |app, call| Box::pin(changes_routes(app, call)),
};
pub static PUSH: Service = Service {
    group: Some(RouteGroup::Push),
    dispatch: |app, call| Box::pin(push_routes(app, call)),
};
pub static ALL: Service = Service {
    group: None,
    dispatch: |app, call| Box::pin(all_routes(app, call)),
};

/// A request matched to a route: its operation and path parameters.
pub(super) struct Call<'r> {
    pub operation: Operation,
    /// The route's template (`/v1/feeds/{token}/calendar.ics`): what logs name, since a raw path
    /// can carry a credential.
    pub route: &'static str,
    pub group: RouteGroup,
    pub params: Vec<(&'static str, &'r str)>,
    pub req: &'r ApiRequest,
}

impl Call<'_> {
    fn param(&self, name: &str) -> ApiResult<&str> {
        self.params
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| *v)
            .ok_or_else(|| ApiError::internal(format!("route without {{{name}}}")))
    }

    fn id(&self) -> ApiResult<&str> {
        self.param("id")
    }

    /// A route the table gives this group but its dispatch lacks: a bug, caught by the test
    /// that sends every route of the table through [`ALL`].
    fn unserved(&self) -> ApiError {
        ApiError::internal(format!(
            "{:?} is not served by the {:?} routes",
            self.operation, self.group
        ))
    }
}

use Operation as Op;

async fn accounts_routes(app: &App, call: &Call<'_>) -> ApiResult<ApiResponse> {
    let req = call.req;
    match call.operation {
        Op::Register => accounts::register(app, req).await,
        Op::Login => accounts::login(app, req).await,
        Op::Logout => accounts::logout(app, req).await,
        Op::Me => accounts::me(app, req).await,
        Op::ChangePassword => accounts::change_password(app, req).await,
        Op::RequestReset => accounts::request_reset(app, req).await,
        Op::ConfirmReset => accounts::confirm_reset(app, req).await,
        Op::DeleteAccount => accounts::delete_account(app, req).await,
        Op::ExportData => accounts::export(app, req).await,
        Op::AuditLog => accounts::audit_log(app, req).await,
        Op::OpenApi => ApiResponse::ok(&openapi::document()),
        _ => Err(call.unserved()),
    }
}

async fn calendars_routes(app: &App, call: &Call<'_>) -> ApiResult<ApiResponse> {
    let req = call.req;
    match call.operation {
        Op::ListCalendars => calendars::list(app, req).await,
        Op::UpdateCalendar => calendars::update(app, req, call.id()?).await,
        Op::DeleteCalendar => calendars::delete(app, req, call.id()?).await,
        Op::SyncCalendar => calendars::sync_now(app, req, call.id()?).await,
        _ => Err(call.unserved()),
    }
}

async fn events_routes(app: &App, call: &Call<'_>) -> ApiResult<ApiResponse> {
    let req = call.req;
    match call.operation {
        Op::ListEvents => events::list(app, req).await,
        Op::CreateEvent => events::create(app, req).await,
        Op::GetEvent => events::get(app, req, call.id()?).await,
        Op::UpdateEvent => events::update(app, req, call.id()?).await,
        Op::DeleteEvent => events::delete(app, req, call.id()?).await,
        Op::EventInstances => events::instances(app, req, call.id()?).await,
        Op::Conflicts => schedule::conflicts(app, req).await,
        Op::FreeBusy => schedule::freebusy(app, req).await,
        Op::Availability => schedule::availability(app, req).await,
        _ => Err(call.unserved()),
    }
}

async fn connections_routes(app: &App, call: &Call<'_>) -> ApiResult<ApiResponse> {
    match call.operation {
        Op::StartConnection => connections::start(app, call.req, call.id()?).await,
        Op::ConnectApple => connections::connect_caldav(app, call.req).await,
        Op::ListConnections => connections::list(app, call.req).await,
        Op::Disconnect => connections::disconnect(app, call.req, call.id()?).await,
        _ => Err(call.unserved()),
    }
}

async fn oauth_callback_routes(app: &App, call: &Call<'_>) -> ApiResult<ApiResponse> {
    match call.operation {
        Op::OAuthStart => connections::launch(app, call.req, call.param("provider")?).await,
        Op::OAuthCallback => connections::callback(app, call.req, call.param("provider")?).await,
        _ => Err(call.unserved()),
    }
}

async fn changes_routes(app: &App, call: &Call<'_>) -> ApiResult<ApiResponse> {
    match call.operation {
        Op::ListChanges => changes::list(app, call.req).await,
        Op::CreateFeed => feeds::create(app, call.req).await,
        Op::ListFeeds => feeds::list(app, call.req).await,
        Op::DeleteFeed => feeds::delete(app, call.req, call.id()?).await,
        Op::ReadFeed => feeds::read(app, call.req, call.param("token")?).await,
        Op::CreateWebhook => webhooks::create(app, call.req).await,
        Op::ListWebhooks => webhooks::list(app, call.req).await,
        Op::UpdateWebhook => webhooks::update(app, call.req, call.id()?).await,
        Op::DeleteWebhook => webhooks::delete(app, call.req, call.id()?).await,
        Op::RotateWebhookSecret => webhooks::rotate_secret(app, call.req, call.id()?).await,
        _ => Err(call.unserved()),
    }
}

async fn push_routes(app: &App, call: &Call<'_>) -> ApiResult<ApiResponse> {
    match call.operation {
        Op::GooglePush => push::google(app, call.req).await,
        Op::GraphPush => push::microsoft(app, call.req).await,
        Op::GraphLifecycle => push::microsoft_lifecycle(app, call.req).await,
        _ => Err(call.unserved()),
    }
}

async fn all_routes(app: &App, call: &Call<'_>) -> ApiResult<ApiResponse> {
    match call.group {
        RouteGroup::Accounts => accounts_routes(app, call).await,
        RouteGroup::Calendars => calendars_routes(app, call).await,
        RouteGroup::Events => events_routes(app, call).await,
        RouteGroup::Connections => connections_routes(app, call).await,
        RouteGroup::OAuthCallback => oauth_callback_routes(app, call).await,
        RouteGroup::Changes => changes_routes(app, call).await,
        RouteGroup::Push => push_routes(app, call).await,
    }
}
