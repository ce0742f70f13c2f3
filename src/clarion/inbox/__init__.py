"""The in-app inbox: what the in-app channel delivers, read by the app per device."""
