//! roster-store-conformance: the one test suite every `roster_core::Store` backend must pass,
//! so that the `SQLite` and `PostgreSQL` backends behave the same.
//!
//! Each check is a `pub async fn check_…(store: Arc<dyn Store>)` that gets a fresh, empty
//! store and panics on the first deviation. Most checks drive the raw `Store` trait; where
//! the contract a client sees is the use case rather than the port (tokens, batches, the
//! department tree, contact scopes, racing writers, the task engine and its workers), they
//! drive `roster_core::Directory` built over the store, exactly as production builds it.
//!
//! A backend crate runs the whole suite with one line in `tests/conformance.rs`:
//!
//! ```text
//! roster_store_conformance::conformance_tests!(make_store());
//! ```
//!
//! where `make_store()` is an async constructor returning `Option<Arc<dyn Store>>` (`None`:
//! the backend is not available here) or `Result<Arc<dyn Store>, String>` (`Err(reason)`).
//! An unavailable backend makes every generated test print `SKIPPED: …` to stderr and
//! return; it never passes silently.
//!
//! This crate knows the core's types and nothing of SQL: it is used only as a
//! dev-dependency of the store crates.

// The checks are test code that happens to live in a library: they panic with a message on
// every deviation, which is their whole purpose. `expect` is used instead of `unwrap` so that
// every panic names what was being done.
#![allow(clippy::missing_panics_doc)]
// Checks read like test code: `s` the store, `t` the tenant, `r` its root, `a`/`b` siblings.
#![allow(clippy::many_single_char_names)]

use std::io::Write as _;
use std::sync::Arc;

use roster_core::Store;

mod access_keys;
mod bi;
mod concurrency;
mod departments;
mod directory;
mod events;
mod groups;
mod idempotency;
mod import;
mod lifecycle;
mod queries;
mod search;
pub mod search_bench;
mod support;
mod task_engine;
mod tasks;
mod tenants;
mod users;

pub use access_keys::*;
pub use bi::*;
pub use concurrency::*;
pub use departments::*;
pub use directory::*;
pub use events::*;
pub use groups::*;
pub use idempotency::*;
pub use import::*;
pub use lifecycle::*;
pub use queries::*;
pub use search::*;
pub use task_engine::*;
pub use tasks::*;
pub use tenants::*;
pub use users::*;

#[doc(hidden)]
pub mod __private {
    //! What the `conformance_tests!` expansion needs, reached through this crate so that the
    //! store crates need not name these dependencies themselves.
    pub use tokio;
}

/// What a store constructor may return to `conformance_tests!`: a store, or why there is none.
pub trait StoreAvailability {
    /// The store, or the reason it is unavailable.
    fn into_store(self) -> Result<Arc<dyn Store>, String>;
}

impl StoreAvailability for Option<Arc<dyn Store>> {
    fn into_store(self) -> Result<Arc<dyn Store>, String> {
        self.ok_or_else(|| "the store constructor returned None (backend unavailable)".to_owned())
    }
}

impl StoreAvailability for Result<Arc<dyn Store>, String> {
    fn into_store(self) -> Result<Arc<dyn Store>, String> {
        self
    }
}

/// Runs one check on the store the constructor produced, or reports the skip loudly.
#[doc(hidden)]
pub async fn __run<A, F, Fut>(name: &str, store: A, check: F)
where
    A: StoreAvailability,
    F: FnOnce(Arc<dyn Store>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    match store.into_store() {
        Ok(store) => check(store).await,
        Err(reason) => {
            // Written to the process's stderr directly rather than with `eprintln!`, which
            // the test harness captures and hides for passing tests: a skip must be seen.
            let _ = writeln!(std::io::stderr(), "SKIPPED: {name}: {reason}");
        }
    }
}

/// Expands to one `#[tokio::test]` per check, each on a fresh store from `$make_store`, an
/// expression evaluated anew for every test that yields a future of
/// `Option<Arc<dyn Store>>` (or `Result<Arc<dyn Store>, String>`).
#[macro_export]
macro_rules! conformance_tests {
    ($make_store:expr) => {
        $crate::conformance_tests!(@each $make_store;
            check_store_names_its_backend_and_answers_ping,
            check_creating_a_tenant_creates_its_root_department,
            check_duplicate_tenant_name_is_refused,
            check_apps_round_trip_and_are_listed_per_tenant,
            check_setting_an_app_secret_revokes_its_tokens,
            check_tokens_are_found_by_hash_and_purged_when_expired,
            check_departments_are_found_by_key_open_id_and_custom_id,
            check_department_unique_values_are_enforced,
            check_children_are_ordered_by_sort_order_then_creation,
            check_updating_a_department_moves_it_and_changes_its_fields,
            check_a_move_closing_a_cycle_is_refused_in_the_transaction,
            check_deleted_departments_never_keep_children_or_members,
            check_users_never_join_a_deleted_department_or_a_resigned_leader,
            check_soft_deleting_a_department_frees_its_custom_id_and_name,
            check_department_member_count_counts_only_active_direct_members,
            check_user_round_trips_every_field,
            check_users_are_found_by_every_lookup,
            check_user_with_departments_follows_membership_order,
            check_resigned_users_release_their_unique_values,
            check_taken_user_values_reports_only_active_holders,
            check_each_user_unique_value_clash_names_its_key,
            check_best_effort_insert_fails_only_the_duplicate_row,
            check_atomic_insert_with_one_duplicate_writes_nothing,
            check_licence_cap_limits_active_users,
            check_inserts_record_one_created_event_per_written_row,
            check_save_records_one_event_per_entity_with_the_inferred_action,
            check_save_writes_all_or_nothing,
            check_licence_cap_applies_to_resurrection_through_save,
            check_purge_resigned_deletes_users_resigned_before_the_cut_off,
            check_list_events_pages_by_id_and_filters_by_tenant,
            check_get_users_resolves_mixed_lookups_each_user_once,
            check_users_by_contact_returns_active_and_resigned_holders,
            check_department_members_pages_active_direct_members,
            check_users_and_departments_led_by_a_user,
            check_search_finds_names_by_pinyin_initials_and_substrings,
            check_search_finds_email_mobile_and_employee_number,
            check_search_ranks_exact_then_prefix_then_substring_once_each,
            check_search_cursors_stay_correct_while_users_are_added,
            check_search_reads_on_past_a_short_first_page_of_a_later_tier,
            check_search_follows_resignations_renames_and_tenants,
            check_idempotency_keys_claim_complete_release_and_purge,
            check_a_claim_past_its_lease_is_taken_over,
            check_jsapi_tickets_are_stored_per_app_and_replaced,
            check_groups_round_trip_and_names_are_unique_case_insensitively,
            check_group_owner_round_trips_and_groups_owned_by_lists_an_owners_groups,
            check_save_rewrites_groups_with_an_updated_event_each,
            check_save_of_users_and_groups_writes_all_or_nothing,
            check_create_group_needs_an_active_owner_and_a_unique_name,
            check_bootstrap_creates_a_tenant_and_an_app_once,
            check_issued_token_authenticates_its_app,
            check_expired_token_is_refused_and_a_new_one_issued,
            check_wrong_secret_or_unknown_app_is_unauthenticated,
            check_token_of_a_rotated_app_no_longer_authenticates,
            check_created_user_reads_back_through_the_directory,
            check_department_open_ids_are_kept_per_tenant,
            check_department_without_order_goes_after_its_siblings,
            check_department_counts_cover_the_subtree,
            check_best_effort_batch_reports_each_item_in_request_order,
            check_atomic_batch_with_a_bad_item_writes_nothing,
            check_batch_leader_may_be_a_later_item_of_the_same_batch,
            check_duplicate_within_a_batch_fails_only_the_later_item,
            check_a_refused_batch_item_keeps_no_value_from_later_items,
            check_licence_cap_applies_to_directory_batches,
            check_department_cannot_move_under_its_own_subtree,
            check_department_with_a_member_or_a_child_cannot_be_deleted,
            check_contact_scope_hides_users_outside_it,
            check_recursive_child_listing_is_breadth_first,
            check_patch_user_changes_only_the_given_fields,
            check_update_user_id_moves_the_custom_id,
            check_delete_user_hands_over_to_an_explicit_successor,
            check_delete_user_defaults_the_successor_to_the_leader,
            check_delete_user_leaves_deputy_posts,
            check_delete_user_leaves_dotted_line_posts,
            check_delete_user_hands_owned_groups_to_the_successor,
            check_delete_user_with_a_bad_acceptor_changes_nothing,
            check_resurrect_user_restores_a_resigned_user,
            check_logout_user_sets_logout_at,
            check_jsapi_ticket_is_the_same_while_valid,
            check_idempotent_replays_the_first_result_without_running_again,
            check_idempotent_waits_for_a_request_in_flight,
            check_a_keyed_create_that_dies_after_its_commit_is_replayed,
            check_department_writes_and_deletes_agree_on_who_is_active,
            check_users_by_contact_prefers_active_holders_and_includes_resigned_on_request,
            check_search_and_member_lists_respect_the_contact_scope,
            check_a_scoped_app_cannot_reach_outside_its_departments,
            check_scoped_search_bounds_the_candidates_of_a_page,
            check_racing_creates_of_same_email_leave_one_user,
            check_racing_patches_of_different_fields_lose_none,
            check_a_pile_up_of_patches_on_one_user_fails_none,
            check_save_checked_refuses_a_stale_read,
            check_racing_first_jsapi_ticket_requests_get_one_ticket,
            check_racing_first_token_calls_get_one_token,
            check_saves_never_leave_leader_cycles_or_resigned_leaders,
            check_racing_raw_inserts_of_same_email_write_one_row,
            check_racing_best_effort_batches_overlapping_in_mobiles_write_each_mobile_once,
            check_racing_creates_never_exceed_the_licence_cap,
            check_racing_tenant_and_department_creations_leave_one_row,
            check_racing_department_and_user_inserts_all_succeed,
            check_tree_limits_hold_inside_the_write,
            check_racing_bootstraps_create_one_tenant_and_fail_none,
            check_racing_claims_of_one_idempotency_key_leave_one_claimant,
            check_racing_idempotent_calls_run_the_operation_once,
            check_tasks_round_trip_and_page_their_items_per_tenant,
            check_a_task_of_many_items_is_stored_whole,
            check_claim_task_takes_the_oldest_task_and_expired_leases_move_on,
            check_only_the_lease_holder_renews_and_finishes_a_task,
            check_a_task_chunk_writes_users_outcomes_counters_and_invitations,
            check_only_a_sealed_import_is_claimed_and_its_chunks_read_back_in_order,
            check_a_dry_run_carries_claimed_values_and_licence_room_across_chunks,
            check_an_import_chunk_commits_users_and_outcomes_once_under_the_lease,
            check_an_import_chunk_counts_department_members,
            check_aborted_and_abandoned_imports_fail_and_drop_their_rows,
            check_list_users_pages_active_users_by_key,
            check_an_import_runs_to_done_through_a_worker_with_results_by_row,
            check_a_task_chunk_without_the_lease_writes_nothing,
            check_a_replayed_task_chunk_overwrites_and_counts_nothing,
            check_the_licence_cap_refuses_users_mid_chunk,
            check_the_outbox_hands_out_due_emails_once_and_records_attempts,
            check_outbox_reads_return_each_messages_activation,
            check_an_activation_works_once_and_not_after_expiry,
            check_racing_claims_of_one_task_leave_one_owner,
            check_claim_this_task_takes_that_task_alone,
            check_racing_outbox_claims_never_share_a_message,
            check_racing_activations_of_one_link_succeed_once,
            check_a_submitted_task_runs_to_done_with_outcomes_in_request_order,
            check_finished_tasks_are_purged_with_their_items_after_retention,
            check_a_dead_workers_task_is_taken_over_and_writes_each_user_once,
            check_a_stopping_worker_hands_its_task_over_at_once,
            check_deliver_outbox_sends_invitations_and_retries_failures_later,
            check_deliver_outbox_gives_up_on_refusals_and_deleted_users,
            check_activation_link_of_a_delivered_invitation_works_once,
            check_bi_members_round_trip_and_a_user_joins_once,
            check_bi_licence_cap_refuses_the_whole_insert,
            check_bi_members_page_and_filter_by_nickname,
            check_bi_member_update_and_delete_record_events,
            check_signature_nonces_are_claimed_once_until_expiry,
            check_racing_claims_of_one_signature_nonce_leave_one_winner,
            check_racing_bi_batches_add_each_user_once_within_the_cap,
            check_bi_add_members_reports_every_entry_and_whole_request_rules,
            check_access_keys_round_trip_with_their_app_and_are_listed_per_tenant,
            check_duplicate_access_key_id_is_refused_and_writes_no_app,
            check_insert_users_invited_writes_users_and_mails_all_or_nothing,
            check_delete_group_removes_only_the_tenants_group,
            check_a_group_with_bi_members_is_not_deleted,
            check_a_bi_group_takes_the_id_its_client_chose,
            check_a_resurrected_user_keeps_only_the_groups_it_left,
            check_racing_bi_member_changes_are_all_kept,
            check_a_group_is_never_deleted_under_its_members,
            check_access_keys_sign_and_issue_tokens_through_the_directory,
            check_rotating_an_access_key_app_replaces_its_secret_and_revokes_tokens,
            check_create_accounts_is_all_or_nothing_with_invitations,
        );
    };
    (@each $make_store:expr; $($check:ident),+ $(,)?) => {
        $(
            #[$crate::__private::tokio::test(
                flavor = "multi_thread",
                worker_threads = 4,
                crate = "roster_store_conformance::__private::tokio"
            )]
            async fn $check() {
                $crate::__run(stringify!($check), $make_store.await, $crate::$check).await;
            }
        )+
    };
}

#[cfg(test)]
mod tests {
    /// The macro's list is written by hand; this keeps it complete.
    #[test]
    fn every_check_is_expanded_by_the_macro() {
        let lib = include_str!("lib.rs");
        let start = lib.find("macro_rules!").expect("the macro");
        let end = lib.find("#[cfg(test)]").expect("the tests");
        let macro_body = &lib[start..end];
        let sources = [
            include_str!("access_keys.rs"),
            include_str!("tenants.rs"),
            include_str!("departments.rs"),
            include_str!("users.rs"),
            include_str!("groups.rs"),
            include_str!("directory.rs"),
            include_str!("concurrency.rs"),
            include_str!("events.rs"),
            include_str!("queries.rs"),
            include_str!("search.rs"),
            include_str!("idempotency.rs"),
            include_str!("lifecycle.rs"),
            include_str!("tasks.rs"),
            include_str!("task_engine.rs"),
            include_str!("import.rs"),
            include_str!("bi.rs"),
        ];
        let mut checks = Vec::new();
        for src in sources {
            for line in src.lines() {
                if let Some(rest) = line.strip_prefix("pub async fn ") {
                    let name = &rest[..rest.find('(').expect("fn signature")];
                    assert!(name.starts_with("check_"), "{name} must be named check_…");
                    checks.push(name.to_owned());
                }
            }
        }
        assert!(checks.len() >= 96, "found only {} checks", checks.len());
        for name in &checks {
            assert!(
                macro_body.contains(&format!("{name},")),
                "{name} is missing from conformance_tests!"
            );
        }
        let listed = macro_body.matches("            check_").count();
        assert_eq!(
            listed,
            checks.len(),
            "the macro lists a check that does not exist"
        );
    }
}
