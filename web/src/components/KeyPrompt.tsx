// Asked for once, when the server first answers 401: the API key, kept in this browser
// (localStorage) and sent on every request and stream; "Forget key" drops it.

import { useEffect, useState } from "preact/hooks";
import { apiKey, forgetKey, onKeyRefused, saveKey } from "../lib/auth";

export function KeyPrompt() {
  const [asked, setAsked] = useState(false);
  const [value, setValue] = useState("");
  useEffect(() => onKeyRefused(() => setAsked(true)), []);
  if (!asked) return null;
  const refused = apiKey() !== null;
  return (
    <div class="key-prompt" role="dialog" aria-modal="true" aria-labelledby="key-title">
      <form class="card" onSubmit={(e) => {
        e.preventDefault();
        if (!value.trim()) return;
        saveKey(value);
        window.location.reload(); // every page and stream starts again, with the key
      }}>
        <h2 id="key-title">API key</h2>
        <p>
          {refused ? "The server refused the saved key (unknown or revoked). " : "This server asks for an API key. "}
          It is kept in this browser only; an operator makes keys with <code>optimlab keys create</code>.
        </p>
        <label for="api-key">Key</label>
        <input id="api-key" type="password" autocomplete="off" value={value} autoFocus
               onInput={(e) => setValue(e.currentTarget.value)} />
        <button type="submit">Use this key</button>
      </form>
    </div>
  );
}

export function ForgetKey() {
  if (apiKey() === null) return null;
  return (
    <button type="button" class="secondary" onClick={() => {
      forgetKey();
      window.location.reload();
    }}>Forget key</button>
  );
}
