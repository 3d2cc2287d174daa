"""Every SQL statement of the service, one module per table; nothing above writes SQL.

Callers use ``queries.<name>``: the table a statement touches is this package's business.
"""

from __future__ import annotations

from coupon.core.queries.batches import issue_batch
from coupon.core.queries.coupons import (
    OverIssue,
    RowLocked,
    add_issued,
    add_issued_capped,
    add_issued_if_available,
    add_issued_if_fenced,
    add_issued_if_version,
    claim_fence,
    create_coupon,
    describe_coupon,
    fold_issued,
    get_coupon,
    set_issued,
    take_stock,
)
from coupon.core.queries.failures import (
    count_failures,
    forget_failures,
    has_failure,
    record_failures,
)
from coupon.core.queries.issues import (
    DuplicateIssue,
    SeatTaken,
    count_issues,
    has_issue,
    holder_of_seat,
    holders,
    insert_issue,
    insert_issues,
    insert_seated_issue,
    insert_seated_issues,
    issued_users,
    seat_of,
    users_with_rows,
)

__all__ = [
    "DuplicateIssue",
    "OverIssue",
    "RowLocked",
    "SeatTaken",
    "add_issued_capped",
    "fold_issued",
    "holder_of_seat",
    "holders",
    "insert_seated_issue",
    "insert_seated_issues",
    "seat_of",
    "users_with_rows",
    "add_issued",
    "add_issued_if_available",
    "add_issued_if_fenced",
    "add_issued_if_version",
    "claim_fence",
    "count_failures",
    "count_issues",
    "create_coupon",
    "describe_coupon",
    "forget_failures",
    "get_coupon",
    "has_failure",
    "has_issue",
    "insert_issue",
    "issue_batch",
    "issued_users",
    "record_failures",
    "set_issued",
    "insert_issues",
    "take_stock",
]
