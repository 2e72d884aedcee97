"""Intake: takes referrals in, keeps identity, passes a pseudonymous referral on."""
