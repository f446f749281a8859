// Package web is the bottom floor of trustgate's HTTP side: what every feature needs to
// answer a request, and nothing of the features themselves.
//
//   - request classification: IsNavigation (a top-level browser navigation, the only
//     request that is redirected to the provider) and WantsHTML (a client that prefers a
//     page to JSON);
//   - safe return paths: SafeReturnPath and IsSafePath keep a post-login redirect on this
//     origin;
//   - the one refusal type, Refusal (status, reason code, message, Retry-After), and its
//     writer, Refuser: a plain HTML page for a browser, JSON for an API client, or a
//     caddyhttp.Error for the site's handle_errors routes (error_pages caddy);
//   - the page template (embedded page.html) and the JSON writer.
//
// It imports nothing of the project.
package web
