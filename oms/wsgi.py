import gc
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "oms.settings")
application = get_wsgi_application()

# Everything loaded so far (Django, the apps, their modules) lives as long as the process: out
# of the collector's sight, a full collection no longer walks it, which would stall a request
# for tens of milliseconds every so often.
gc.freeze()
