// Sends on the SAML response the identity provider posted (served at
// /consent/saml-continue.js): the form re-posts it from the gateway's own page, so the
// browser includes the gateway's SameSite=Lax cookies. Without scripts, its button does it.
'use strict';
document.getElementById('saml-continue')?.submit();
