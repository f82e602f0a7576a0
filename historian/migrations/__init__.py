"""Plain SQL schema migrations, applied in order by `historian.migrate`."""
