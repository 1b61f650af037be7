// Passkeys on the consent pages (served at /consent/passkey.js; no inline script anywhere).
// Sign-in: the section #passkey-sign-in asks the gateway for options for the typed email,
// lets the browser's authenticator answer (navigator.credentials.get) and posts the answer;
// the gateway signs the human in and names the page to go to. Registration: the section
// #passkey-register (shown once signed in) does the same with navigator.credentials.create.
// The options and answers are WebAuthn's JSON forms (PublicKeyCredential.parse…FromJSON,
// toJSON). Errors are shown in an element with role "alert", progress with role "status".
'use strict';

(() => {
  async function post(url, body) {
    let response;
    try {
      response = await fetch(url, {
        method: 'POST',
        credentials: 'same-origin',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
    } catch (error) {
      return { ok: false, error: 'The gateway could not be reached. Try again.' };
    }
    try {
      return await response.json();
    } catch (error) {
      return { ok: false, error: 'The gateway answered unexpectedly. Reload the page and try again.' };
    }
  }

  function say(element, text, isError) {
    element.textContent = text;
    element.setAttribute('role', isError ? 'alert' : 'status');
  }

  function supported(status) {
    if (window.PublicKeyCredential && PublicKeyCredential.parseRequestOptionsFromJSON) {
      return true;
    }
    say(status, 'This browser cannot use passkeys here. Use another way to sign in.', true);
    return false;
  }

  const signIn = document.getElementById('passkey-sign-in');
  if (signIn) {
    const status = document.getElementById('passkey-sign-in-status');
    const email = document.getElementById('passkey-email');
    document.getElementById('passkey-sign-in-button').addEventListener('click', async () => {
      if (!supported(status)) return;
      const flow = signIn.dataset.flow;
      const csrf = signIn.dataset.csrf;
      say(status, 'Waiting for your passkey…', false);
      const started = await post('/consent/passkey/sign-in/start', { flow, csrf, email: email.value });
      if (!started.ok) {
        say(status, started.error, true);
        return;
      }
      let credential;
      try {
        credential = await navigator.credentials.get({
          publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(started.options.publicKey),
        });
      } catch (error) {
        say(status, 'No passkey of this browser could sign you in. Use another way to sign in.', true);
        return;
      }
      const finished = await post('/consent/passkey/sign-in/finish', {
        flow, csrf, ceremony: started.ceremony, credential: credential.toJSON(),
      });
      if (finished.ok) {
        window.location.assign(finished.redirect);
      } else {
        say(status, finished.error, true);
      }
    });
  }

  const register = document.getElementById('passkey-register');
  if (register) {
    const status = document.getElementById('passkey-register-status');
    document.getElementById('passkey-register-button').addEventListener('click', async () => {
      if (!supported(status)) return;
      const flow = register.dataset.flow;
      const csrf = register.dataset.csrf;
      say(status, 'Waiting for your authenticator…', false);
      const started = await post('/consent/passkey/register/start', { flow, csrf });
      if (!started.ok) {
        say(status, started.error, true);
        return;
      }
      let credential;
      try {
        credential = await navigator.credentials.create({
          publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(started.options.publicKey),
        });
      } catch (error) {
        say(status, 'No passkey was created. Try again, or continue without one.', true);
        return;
      }
      const finished = await post('/consent/passkey/register/finish', {
        flow, csrf, ceremony: started.ceremony, credential: credential.toJSON(),
      });
      if (finished.ok) {
        say(status, 'Passkey added. Next time, sign in with it.', false);
      } else {
        say(status, finished.error, true);
      }
    });
  }
})();
