//! roster-core: the directory domain.
//!
//! It holds the value types (parsed once, then trusted), the entities (tenants, apps,
//! departments, users, groups), the `Store` port that storage backends implement, and the
//! `Directory` use cases that every front door calls. It deliberately knows nothing about
//! HTTP, SQL or any vendor's JSON: those live in the `roster-api-*` and `roster-store-*`
//! crates, which translate into and out of the types defined here.

pub mod access_key;
pub mod app;
pub mod audit;
pub mod batch;
pub mod bi;
pub mod clock;
pub mod department;
pub mod directory;
pub mod error;
pub mod group;
pub mod ids;
pub mod import;
pub mod outbox;
pub mod password;
pub mod search;
pub mod store;
pub mod task;
pub mod tenant;
pub mod user;
pub mod values;

pub use access_key::{AccessKey, ProjectId, SecretSealer, SigningKey};
pub use app::{App, AppKind, Caller, ContactScope, Scope, Scopes, TokenRecord};
pub use audit::{Actor, Change, ChangeAction, ChangeEvent};
pub use batch::{BatchItem, BatchMode, BatchReport, CreatedUser};
pub use bi::{BiBatchReport, BiEntryFailure, BiEntryOutcome, BiMember, BiMemberPatch, BiRoles};
pub use clock::{days_from_civil, Clock, SystemClock};
pub use department::{
    Department, DepartmentFields, DepartmentPatch, DeptKey, DeptLookup, I18nName, NewDepartment,
};
pub use directory::{
    first_batch_duplicate, Bootstrapped, CreatedAccessKey, Directory, DryRun, Handover,
    IdempotentOutcome, Invitations, IssuedToken, TaskSubmission,
};
pub use error::{ConflictKind, CoreError, Entity, StoreError, UniqueKey};
pub use group::Group;
pub use ids::{AppId, IdGen, OpenDepartmentId, OpenId, RandomIds, TenantId, UnionId, UserId};
pub use import::{
    ImportChunk, ImportCommit, ImportOutcomes, ImportRowResult, IMPORT_CHUNK_ROWS, IMPORT_KIND,
};
pub use outbox::{Channel, MailError, MailSender, OutboxMessage};
pub use search::{SearchCursor, SearchQuery, SearchTier};
pub use store::{
    IdempotencyClaim, IdempotencyKey, ReadVersions, Store, TakenValues, TaskChunk, UniqueProbe,
    UserLookup,
};
pub use task::{ItemError, ItemOutcome, Task, TaskId, TaskItem, TaskStatus};
pub use tenant::{NewTenant, Tenant};
pub use user::{
    CustomAttr, Membership, NewUser, OrdersLeftOut, User, UserKey, UserPatch, UserProfile,
    UserStatus,
};
