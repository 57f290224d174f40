//! roster-core: the directory domain.
//!
//! It holds the value types (parsed once, then trusted), the entities (tenants, apps,
//! departments, users, groups), the `Store` port that storage backends implement, and the
//! `Directory` use cases that every front door calls. It deliberately knows nothing about
//! HTTP, SQL or any vendor's JSON: those live in the `roster-api-*` and `roster-store-*`
//! crates, which translate into and out of the types defined here.

pub mod app;
pub mod audit;
pub mod batch;
pub mod clock;
pub mod department;
pub mod directory;
pub mod error;
pub mod group;
pub mod ids;
pub mod outbox;
pub mod store;
pub mod task;
pub mod tenant;
pub mod user;
pub mod values;

pub use app::{App, AppKind, Caller, ContactScope, Scope, Scopes, TokenRecord};
pub use audit::{Actor, Change, ChangeAction, ChangeEvent};
pub use batch::{BatchItem, BatchMode, BatchReport, CreatedUser};
pub use clock::{Clock, SystemClock};
pub use department::{
    Department, DepartmentFields, DepartmentPatch, DeptKey, DeptLookup, I18nName, NewDepartment,
};
pub use directory::{
    Bootstrapped, Directory, Handover, IdempotentOutcome, Invitations, IssuedToken, TaskSubmission,
};
pub use error::{ConflictKind, CoreError, Entity, StoreError, UniqueKey};
pub use group::Group;
pub use ids::{AppId, IdGen, OpenDepartmentId, OpenId, RandomIds, TenantId, UnionId, UserId};
pub use outbox::{Channel, MailSender, OutboxMessage};
pub use store::{
    IdempotencyClaim, IdempotencyKey, Store, TakenValues, TaskChunk, UniqueProbe, UserLookup,
};
pub use task::{ItemError, ItemOutcome, Task, TaskId, TaskItem, TaskStatus};
pub use tenant::{NewTenant, Tenant};
pub use user::{
    CustomAttr, Membership, NewUser, User, UserKey, UserPatch, UserProfile, UserStatus,
};
