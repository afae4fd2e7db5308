"""The domain kernel: the rules every service shares (categories, levels, phones, statuses, local
time, working days, derived ids, addresses, spreadsheets). Pure Python: no Flask, no storage, no
broker, and never an import from ``services`` — a service may use the kernel, never another service."""
