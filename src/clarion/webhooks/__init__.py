"""Signed webhooks: delivery events per project, and the sender the webhook channel shares."""
