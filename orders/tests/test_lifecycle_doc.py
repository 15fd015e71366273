from django.core.management import call_command


def test_the_lifecycle_diagrams_in_docs_are_what_the_code_draws():
    call_command("lifecycle_diagrams", "--check")  # raises CommandError when out of date
