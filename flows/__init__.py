"""Prefect flows: thin `@flow`s that read config, call tasks and publish artifacts.

Imports point one way: flows -> tasks -> carbonshift. No logic lives in a flow body.
"""
