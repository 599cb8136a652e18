//! The OpenAPI 3.1 document, generated from the handlers' `#[utoipa::path]` annotations and the
//! types' `ToSchema` derives, served at `/openapi.json`; Swagger UI (vendored into the binary, no
//! CDN) at `/docs/`.

use crate::routes::{health, locations, platform};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(title = "AriesOne API", description = "Multi-tenant platform for HME/DME providers. Errors are RFC 9457 problem+json; see /problems/{code}."),
    paths(
        platform::create_tenant, platform::list_tenants, platform::show_tenant, platform::suspend_tenant,
        platform::resume_tenant, platform::archive_tenant, platform::list_shards,
        locations::create, locations::list, locations::show, locations::update, locations::delete,
        health::live, health::ready,
    ),
    components(schemas(
        platform::TenantView, platform::CreateTenant, platform::ShardView,
        aries_tenants::locations::Location, aries_tenants::locations::LocationInput,
        aries_tenants::locations::model::AddressInput, aries_tenants::locations::Address,
        aries_tenants::FieldError, health::Readiness,
    )),
    modifiers(&BearerAuth),
    tags((name = "platform", description = "Operator API"), (name = "locations", description = "A tenant's branches"),
         (name = "health", description = "Liveness and readiness"))
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}
