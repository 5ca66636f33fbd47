"""The accounting example plugin: the seed's "Accounting plugin sets up payroll" subscriber."""
