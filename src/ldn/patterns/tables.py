"""Tables of the communication patterns: referrals a node sent (workflow Tasks) and received (inbox).

Both keep the FHIR Task as sent or received (JSON text) next to the columns the rules need. The
patient's BSN is inside that JSON (the Task's `for.identifier`, as the Notified Pull TA has it)
and never in a column or an index.
"""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Index, Integer, String, Table, Text, UniqueConstraint

from ldn.core.storage import Base

__all__ = ["referral_in", "referral_out"]

# The sender's side: one workflow Task per referral. Its id is the authorization base the
# receiver's tokens carry, so the enforcement point finds the referral from the token alone.
referral_out = Table(
    "patterns_referral_out",
    Base.metadata,
    Column("id", String(36), primary_key=True),
    Column("sender_ura", String(8), nullable=False),
    Column("receiver_ura", String(8), nullable=False),
    Column("status", String(32), nullable=False),
    Column("restriction_end", DateTime(timezone=True), nullable=False),
    Column("service_type", String(64), nullable=False),
    Column("notification_identifier", String(100), nullable=False),
    Column("group_identifier", String(100), nullable=False),
    Column("professional_id", String(9), nullable=False),
    Column("allowed_queries", Text, nullable=False),  # JSON list, relative to the sender's FHIR base
    Column("get_workflow_task", Integer, nullable=False),
    Column("task", Text, nullable=False),  # the workflow Task (FHIR STU3 JSON)
    Column("notification", Text, nullable=False),  # the notification Task as posted (FHIR STU3 JSON)
    Column("delivery", String(16), nullable=False),  # pending, delivered, failed, cancel-failed
    Column("delivery_error", Text, nullable=True),
    Column("version", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ix_patterns_referral_out_sender", "sender_ura", "created_at"),
)

# The receiver's side: one row per referral (notification identifier per sender), its local status
# and what was pulled.
referral_in = Table(
    "patterns_referral_in",
    Base.metadata,
    Column("id", String(36), primary_key=True),
    Column("receiver_ura", String(8), nullable=False),
    Column("sender_ura", String(8), nullable=False),
    Column("notification_identifier", String(100), nullable=False),
    Column("group_identifier", String(100), nullable=False),
    Column("authorization_base", String(1000), nullable=False),
    Column("status", String(32), nullable=False),
    Column("restriction_end", DateTime(timezone=True), nullable=False),
    Column("service_type", String(64), nullable=True),
    Column("task", Text, nullable=False),  # the latest notification Task received (FHIR STU3 JSON)
    Column("last_modified", String(40), nullable=True),  # Task.lastModified of that notification
    Column("version", Integer, nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("pulled_at", DateTime(timezone=True), nullable=True),
    Column("pulled_by", String(9), nullable=True),
    Column("pull_result", Text, nullable=True),  # the pulled data (FHIR R4 collection Bundle JSON)
    UniqueConstraint("receiver_ura", "sender_ura", "notification_identifier", name="uq_patterns_referral_in_ident"),
    Index("ix_patterns_referral_in_receiver", "receiver_ura", "received_at"),
)
