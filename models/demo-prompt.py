def is_prime(n):
    """Return True if n is a prime number."""
