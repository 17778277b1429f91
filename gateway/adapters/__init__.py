"""One adapter per CRM behind ``base.CrmAdapter``; a CRM library's types never leave its module."""
