"""What the ConvoAI and SIP gateway clients share: the session, the transport, retries, errors.

Imports no feature package: convoai/ and sip/ build on it, not the other way round.
"""
