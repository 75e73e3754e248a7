"""Where flows go: files now; logs, stores and the dashboard later."""
