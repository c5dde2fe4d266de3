//! Row filters (`filter => 'new.status = ''active'''`): one boolean expression over `old`
//! and `new`, parsed and checked as PostgreSQL parses a trigger's WHEN condition (the same
//! refusals: no subquery, aggregate, window or set-returning function), with `old` and
//! `new` both in scope for every event (the fields of a missing image are NULL).
//!
//! A watch keeps its filter as text, the way PostgreSQL deparses it: every column
//! qualified (`old.x`, `new.x`), the names of other schemas qualified too (it is deparsed
//! with the safe search_path), so the text means the same whoever reads it, in a dump as in
//! the trigger. Renaming a column rewrites the text (`renamed_filter`), and the watch's
//! trigger depends on what the filter uses, as a trigger depends on its WHEN condition.

use std::ffi::{c_char, CStr, CString};

use pgrx::pg_sys;
use pgrx::{pg_guard, PgList};

use crate::errors::WatchError;
use crate::pg::server_text;
use crate::pg::subtransaction;
use crate::pg::version as pg_version;

/// The range table index of `old` in a parsed filter; `new` is the next.
pub const OLD_VARNO: i32 = 1;
pub const NEW_VARNO: i32 = 2;

/// A filter parsed against a table: a boolean expression whose Vars name `old`
/// ([`OLD_VARNO`]) or `new` ([`NEW_VARNO`]), with the range table they index. Allocated in
/// the memory context that was current when it was parsed.
pub struct ParsedFilter {
    pub expression: *mut pg_sys::Node,
    range_table: *mut pg_sys::List,
}

/// A column renamed while the filter's text still names it by its old name.
struct Rename {
    old: CString,
    new: CString,
    followed: bool,
}

/// Checks `text` as the filter of a watch on `relation` and returns it normalised (as
/// PostgreSQL deparses it). Any problem is a [`WatchError`]; nothing is changed.
///
/// # Safety
/// `relation` must be open.
pub unsafe fn checked(relation: pg_sys::Relation, text: &str) -> Result<String, WatchError> {
    if text.trim().is_empty() {
        return Err(WatchError::EmptyFilter);
    }
    // SAFETY: the caller's obligation.
    let parsed = unsafe { parse_catching(relation, text, None) }?;
    // SAFETY: a filter just parsed against the open relation.
    Ok(unsafe { deparse(&parsed) })
}

/// The filter's text after column `old` of `relation` was renamed `new`, when the filter
/// used it; `None` when it did not. An error when the filter cannot be read any more.
///
/// # Safety
/// `relation` must be open.
pub unsafe fn renamed_filter(
    relation: pg_sys::Relation,
    text: &str,
    old: &str,
    new: &str,
) -> Result<Option<String>, WatchError> {
    let mut rename = Rename {
        old: server_text::encode_cstring(old),
        new: server_text::encode_cstring(new),
        followed: false,
    };
    let rename_ptr: *mut Rename = &mut rename;
    // SAFETY: the caller's obligation; `rename` outlives the parse, which alone reads it.
    let parsed = unsafe { parse_catching(relation, text, Some(rename_ptr)) }?;
    // SAFETY: as in `checked`.
    Ok(rename.followed.then(|| unsafe { deparse(&parsed) }))
}

/// Records that trigger `trigger` depends on what the filter uses (its columns, functions,
/// operators and types), as PostgreSQL records it for a trigger's WHEN condition: dropping
/// one of them is refused, or with CASCADE takes the trigger (and so the watch) with it.
/// Refused, recording nothing, when the filter does not parse.
///
/// # Safety
/// `relation` must be open; `trigger` must be a trigger on it.
pub unsafe fn record_dependencies(
    relation: pg_sys::Relation,
    trigger: pg_sys::Oid,
    text: &str,
) -> Result<(), WatchError> {
    let trigger = pg_sys::ObjectAddress {
        classId: pg_sys::TriggerRelationId,
        objectId: trigger,
        objectSubId: 0,
    };
    // SAFETY: the caller's obligation.
    let parsed = unsafe { parse_catching(relation, text, None) }?;
    // SAFETY: the expression and its range table are the parser's, of this transaction.
    unsafe {
        pg_sys::recordDependencyOnExpr(
            &trigger,
            parsed.expression,
            parsed.range_table,
            pg_sys::DependencyType::DEPENDENCY_NORMAL,
        )
    };
    Ok(())
}

/// [`parse_with`] in a subtransaction: PostgreSQL's refusals (syntax, unknown names, types)
/// come back as [`WatchError::InvalidFilter`] instead of being raised.
///
/// # Safety
/// As [`parse_with`].
unsafe fn parse_catching(
    relation: pg_sys::Relation,
    text: &str,
    rename: Option<*mut Rename>,
) -> Result<ParsedFilter, WatchError> {
    // SAFETY: the caller's obligation.
    subtransaction::catching(|| unsafe { parse_with(relation, text, rename) })
        .unwrap_or_else(|failure| Err(WatchError::invalid_filter(failure)))
}

/// Parses `text` against `relation`. Our own refusals are returned; PostgreSQL's (syntax,
/// unknown names, types) are raised.
///
/// # Safety
/// `relation` must be open.
pub unsafe fn parse(relation: pg_sys::Relation, text: &str) -> Result<ParsedFilter, WatchError> {
    // SAFETY: the caller's obligation.
    unsafe { parse_with(relation, text, None) }
}

/// [`parse`], following `rename` when given.
///
/// # Safety
/// `relation` must be open; `rename`, when given, must be valid for the call.
unsafe fn parse_with(
    relation: pg_sys::Relation,
    text: &str,
    rename: Option<*mut Rename>,
) -> Result<ParsedFilter, WatchError> {
    if text.contains('\0') {
        return Err(WatchError::FilterNotOneExpression);
    }
    let query = server_text::encode_cstring(&format!("SELECT {text}"));
    // SAFETY: a NUL-terminated query; the parse trees are allocated in the current context.
    let expression = unsafe { only_expression(query.as_ptr()) }?;
    // SAFETY: a new parse state; the relation is open (the caller's obligation); the alias
    // names are copied by makeAlias.
    unsafe {
        let state = pg_sys::make_parsestate(std::ptr::null_mut());
        for alias in [c"old", c"new"] {
            let item = pg_sys::addRangeTableEntryForRelation(
                state,
                relation,
                pg_sys::AccessShareLock as i32,
                pg_sys::makeAlias(alias.as_ptr(), std::ptr::null_mut()),
                false,
                false,
            );
            pg_sys::addNSItemToQuery(state, item, false, true, true);
        }
        if let Some(rename) = rename {
            (*state).p_post_columnref_hook = Some(follow_rename);
            (*state).p_ref_hook_state = rename.cast();
        }
        let transformed = pg_sys::transformExpr(
            state,
            expression,
            pg_sys::ParseExprKind::EXPR_KIND_TRIGGER_WHEN,
        );
        let boolean = pg_sys::coerce_to_boolean(state, transformed, c"filter".as_ptr());
        pg_sys::assign_expr_collations(state, boolean);
        let parsed = ParsedFilter {
            expression: boolean,
            range_table: (*state).p_rtable,
        };
        check_columns(relation, &parsed)?;
        Ok(parsed)
    }
}

/// The one expression of `SELECT <filter>`: anything else (a second statement, a FROM, a
/// second expression, a label) means the text is not one expression.
///
/// # Safety
/// `query` must be NUL-terminated.
unsafe fn only_expression(query: *const c_char) -> Result<*mut pg_sys::Node, WatchError> {
    // SAFETY: the caller's obligation; the parser returns a list of RawStmt nodes.
    let statements = unsafe {
        PgList::<pg_sys::RawStmt>::from_pg(pg_sys::raw_parser(
            query,
            pg_sys::RawParseMode::RAW_PARSE_DEFAULT,
        ))
    };
    let not_one = Err(WatchError::FilterNotOneExpression);
    if statements.len() != 1 {
        return not_one;
    }
    // SAFETY: one RawStmt, whose statement is a node.
    let statement = unsafe { (*statements.get_ptr(0).expect("one statement")).stmt };
    // SAFETY: a node's tag tells its type.
    if unsafe { (*statement).type_ } != pg_sys::NodeTag::T_SelectStmt {
        return not_one;
    }
    // SAFETY: tagged T_SelectStmt.
    let select = unsafe { &*statement.cast::<pg_sys::SelectStmt>() };
    let bare = select.distinctClause.is_null()
        && select.intoClause.is_null()
        && select.fromClause.is_null()
        && select.whereClause.is_null()
        && select.groupClause.is_null()
        && select.havingClause.is_null()
        && select.windowClause.is_null()
        && select.valuesLists.is_null()
        && select.sortClause.is_null()
        && select.limitOffset.is_null()
        && select.limitCount.is_null()
        && select.lockingClause.is_null()
        && select.withClause.is_null()
        && select.op == pg_sys::SetOperation::SETOP_NONE;
    // SAFETY: the target list of a SELECT holds ResTarget nodes.
    let targets = unsafe { PgList::<pg_sys::ResTarget>::from_pg(select.targetList) };
    if !bare || targets.len() != 1 {
        return not_one;
    }
    // SAFETY: one ResTarget.
    let target = unsafe { &*targets.get_ptr(0).expect("one target") };
    if !target.name.is_null() || !target.indirection.is_null() {
        return not_one;
    }
    Ok(target.val)
}

/// Refuses system columns (not in the rows a trigger gets) and virtual generated columns
/// (NULL there).
///
/// # Safety
/// `relation` must be open; `parsed` parsed against it.
unsafe fn check_columns(
    relation: pg_sys::Relation,
    parsed: &ParsedFilter,
) -> Result<(), WatchError> {
    // SAFETY: the relation is open.
    let table = unsafe { (*relation).rd_id };
    for varno in [OLD_VARNO, NEW_VARNO] {
        let mut attributes: *mut pg_sys::Bitmapset = std::ptr::null_mut();
        // SAFETY: walks the expression; the set is allocated in the current context.
        unsafe { pg_sys::pull_varattnos(parsed.expression, varno as u32, &mut attributes) };
        let mut member = -1;
        loop {
            // SAFETY: iterates the set just made.
            member = unsafe { pg_sys::bms_next_member(attributes, member) };
            if member < 0 {
                break;
            }
            let attnum = member + pg_sys::FirstLowInvalidHeapAttributeNumber;
            if attnum == 0 {
                continue; // the whole row
            }
            let column = column_name(table, attnum as pg_sys::AttrNumber);
            if attnum < 0 {
                return Err(WatchError::FilterSystemColumn { column });
            }
            if pg_version::is_virtual_generated_column(table, attnum as pg_sys::AttrNumber) {
                return Err(WatchError::VirtualGeneratedColumn { column });
            }
        }
    }
    Ok(())
}

fn column_name(table: pg_sys::Oid, attnum: pg_sys::AttrNumber) -> String {
    // SAFETY: a catalog lookup; the column (or system column) exists, as the parser found it.
    let name = unsafe { pg_sys::get_attname(table, attnum, true) };
    if name.is_null() {
        return attnum.to_string();
    }
    // SAFETY: a non-null result is a NUL-terminated copy of the name.
    server_text::decode_cstr(unsafe { CStr::from_ptr(name) })
}

/// The filter as PostgreSQL deparses it, every column qualified by `old` or `new`.
///
/// # Safety
/// `parsed` must be a filter parsed in this transaction.
unsafe fn deparse(parsed: &ParsedFilter) -> String {
    // SAFETY: a zeroed plan statement whose range table is the filter's is all the deparser
    // reads of it (the range table and its names); everything is allocated in the current
    // context.
    unsafe {
        let statement = pg_sys::palloc0(std::mem::size_of::<pg_sys::PlannedStmt>())
            .cast::<pg_sys::PlannedStmt>();
        (*statement).type_ = pg_sys::NodeTag::T_PlannedStmt;
        (*statement).rtable = parsed.range_table;
        let mut names = std::ptr::null_mut();
        for name in [c"old", c"new"] {
            names = pg_sys::lappend(names, pg_sys::pstrdup(name.as_ptr()).cast());
        }
        let context = pg_sys::deparse_context_for_plan_tree(statement, names);
        let text = pg_sys::deparse_expression(parsed.expression, context, true, false);
        server_text::decode_cstr(CStr::from_ptr(text))
    }
}

/// The parser's hook for a column reference it could not resolve: `old.<renamed>` or
/// `new.<renamed>` resolves to the column under its new name.
#[pg_guard]
unsafe extern "C-unwind" fn follow_rename(
    state: *mut pg_sys::ParseState,
    reference: *mut pg_sys::ColumnRef,
    resolved: *mut pg_sys::Node,
) -> *mut pg_sys::Node {
    if !resolved.is_null() {
        return std::ptr::null_mut();
    }
    // SAFETY: the parser passes its state, whose hook state `parse` set to a live Rename,
    // and the column reference, whose fields are String nodes (or A_Star).
    unsafe {
        let rename = &mut *(*state).p_ref_hook_state.cast::<Rename>();
        let fields = PgList::<pg_sys::Node>::from_pg((*reference).fields);
        if fields.len() != 2 {
            return std::ptr::null_mut();
        }
        let (Some(image), Some(column)) = (fields.get_ptr(0), fields.get_ptr(1)) else {
            return std::ptr::null_mut();
        };
        let Some(column_name) = pg_version::string_node(column) else {
            return std::ptr::null_mut();
        };
        if column_name != rename.old.as_c_str() {
            return std::ptr::null_mut();
        }
        let renamed =
            pg_sys::palloc0(std::mem::size_of::<pg_sys::ColumnRef>()).cast::<pg_sys::ColumnRef>();
        (*renamed).type_ = pg_sys::NodeTag::T_ColumnRef;
        (*renamed).location = (*reference).location;
        let new_name = pg_sys::makeString(pg_sys::pstrdup(rename.new.as_ptr()));
        (*renamed).fields = pg_sys::lappend(
            pg_sys::lappend(std::ptr::null_mut(), image.cast()),
            new_name.cast(),
        );
        rename.followed = true;
        pg_sys::transformExpr(state, renamed.cast(), (*state).p_expr_kind)
    }
}
