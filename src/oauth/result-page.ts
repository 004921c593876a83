/** The page the browser shows at the end of a consent: plain, self-contained, no scripts. */
export interface ResultPage {
  ok: boolean;
  heading: string;
  lines: string[];
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

export function renderResultPage(page: ResultPage): string {
  const color = page.ok ? '#137333' : '#c5221f';
  const items = page.lines.map((line) => `<p>${escapeHtml(line)}</p>`).join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>tokend: ${escapeHtml(page.heading)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{font-family:system-ui,sans-serif;max-width:40em;margin:4em auto;padding:0 1em;color:#202124}
h1{color:${color};font-size:1.5em}p{line-height:1.5}</style></head>
<body><h1 id="result" data-ok="${page.ok}">${escapeHtml(page.heading)}</h1>
${items}
</body></html>
`;
}
