"""Addressing (adressering, SPEC §5): the LRZa register, the central mCSD directory (ITI-90, ITI-91,
ITI-130) and every node's local replica with the lookups other functions use
(`ldn.addressing.replica.ReplicaLookups`)."""
