from authsvc.passwords.hashing import PasswordHasherService, VerifyResult
from authsvc.passwords.policy import PasswordPolicy, PolicyViolation, normalize

__all__ = ["PasswordHasherService", "VerifyResult", "PasswordPolicy", "PolicyViolation", "normalize"]
