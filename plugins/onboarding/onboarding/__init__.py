"""An example plugin that calls another plugin through the core's operator lane.

``POST /api/onboard/{id}`` writes a new user's starting profile into user-management with
``CoreClient.invoke("user-management", "user_info", id, method="PUT")``. It never talks to
user-management directly (its NetworkPolicy would not let it): the core checks the call
against policy (dependency declared, both Active, handles_pii for pii data) and forwards it
with a call token, so user-management sees ``onboarding`` as the caller.
"""
