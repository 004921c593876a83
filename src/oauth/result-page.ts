/** The page the browser shows at the end of a consent: plain, self-contained, no scripts. */
export interface ResultPage {
  /** `partial`: signed in, but some scopes were not granted (the account works for the rest). */
  outcome: 'ok' | 'partial' | 'failed';
  heading: string;
  /** Plain text; `code` in backticks is shown as code. */
  lines: string[];
}

const COLORS: Record<ResultPage['outcome'], string> = { ok: '#137333', partial: '#b06000', failed: '#c5221f' };

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** Escaped text, with backtick spans as <code> (commands the user can copy). */
function inline(text: string): string {
  return escapeHtml(text).replace(/`([^`]+)`/g, '<code>$1</code>');
}

export function renderResultPage(page: ResultPage): string {
  const items = page.lines.map((line) => `<p>${inline(line)}</p>`).join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>tokend: ${escapeHtml(page.heading)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{font-family:system-ui,sans-serif;max-width:40em;margin:4em auto;padding:0 1em;color:#202124}
h1{color:${COLORS[page.outcome]};font-size:1.5em}p{line-height:1.5}
code{font-family:ui-monospace,monospace;background:#f1f3f4;padding:.1em .3em;border-radius:3px;overflow-wrap:anywhere}</style></head>
<body><h1 id="result" data-ok="${page.outcome !== 'failed'}" data-outcome="${page.outcome}">${escapeHtml(page.heading)}</h1>
${items}
</body></html>
`;
}
