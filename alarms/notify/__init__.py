"""Maintenance notifications: routing, repetition, escalation, flood folding and delivery."""
