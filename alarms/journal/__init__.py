"""The alarm journal in PostgreSQL: transitions, comments, audited operations and queries."""
