"""Secrets Manager through Powertools parameters: cached reads, fetched again when asked (a rotated token).

Secret values are never logged.
"""

from aws_lambda_powertools.utilities import parameters


def read_secret(secret_id: str, max_age_s: int, refresh: bool = False) -> str:
    """The `SecretString` of `secret_id`, stripped; cached for `max_age_s` seconds unless `refresh`.

    Raises:
        aws_lambda_powertools.utilities.parameters.exceptions.GetParameterError: Secrets Manager failed.
    """
    return str(parameters.get_secret(secret_id, max_age=max_age_s, force_fetch=refresh)).strip()
