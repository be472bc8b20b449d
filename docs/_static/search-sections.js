/* Search results that point to the section where a term is taught, with a snippet of its prose.
 *
 * Sphinx's search (searchtools.js) links a result found in a page's text to the top of the page, and
 * cuts its snippet from the whole page's text: code cells, outputs, headings and the contents sidebar
 * run together. It fetches each result's page to make that snippet, with Search.makeSearchSummary;
 * this script, loaded on the search page right after searchtools.js, replaces that function: it looks
 * for the terms in the article's prose (paragraphs and list items, not code cells, outputs or expected
 * errors; running text before asides such as admonitions and tables), cuts the snippet from the first
 * block that holds the most of them, and points the result's link at the section around it. Where the
 * terms are only in code, the result keeps Sphinx's snippet and its link to the page. No request is
 * added: the page is the one Sphinx fetches for its snippet.
 */
"use strict";

const SearchSections = {
  PROSE: "p, li",
  NOT_PROSE: ".cell, div.highlight, pre, .expected-error, nav, .toctree-wrapper",
  ASIDE: ".admonition, table",

  /* In a parsed page, the prose block that best shows the (stemmed, as Sphinx's) keywords, within the
   * section `anchor` ("#id") if given: {anchor, heading, text}, heading being null for the page's own
   * section; or null when no prose holds any keyword. The page is Sphinx's parsed copy, changed here. */
  find: (doc, keywords, anchor) => {
    doc.querySelectorAll(".headerlink").forEach((link) => link.remove()); // the "#" after each heading
    const article = doc.querySelector("article") || doc.body;
    const target = anchor && article.querySelector(`[id="${CSS.escape(anchor.slice(1))}"]`);
    const scope = (target && target.closest("section")) || article;
    const terms = [...keywords].map((keyword) => keyword.toLowerCase());
    let best = null;
    let bestScore = 0;
    for (const block of scope.querySelectorAll(SearchSections.PROSE)) {
      if (block.closest(SearchSections.NOT_PROSE)) continue;
      if (block.tagName === "LI" && block.querySelector("p")) continue; // its paragraphs count instead
      const text = block.textContent.replace(/\s+/g, " ").trim();
      const found = terms.filter((term) => text.toLowerCase().includes(term)).length;
      // More of the terms first, then running text before an aside; the first such block wins.
      const score = found && 2 * found + (block.closest(SearchSections.ASIDE) ? 0 : 1);
      if (score > bestScore) [best, bestScore] = [{ block, text }, score];
    }
    const section = best && best.block.closest("section[id]");
    if (!section) return null;
    const title = section.querySelector(":scope > h1, :scope > h2, :scope > h3, :scope > h4");
    const top = !section.parentElement.closest("section[id]");
    const heading = top || !title ? null : title.textContent.trim();
    return { anchor: `#${section.id}`, heading, text: best.text };
  },

  /* About 240 characters of `text` around the first keyword, as Sphinx cuts its snippets, but from and
   * to whole words. */
  snippet: (text, keywords) => {
    const lower = text.toLowerCase();
    const at = [...keywords].map((k) => lower.indexOf(k.toLowerCase())).filter((i) => i > -1);
    const first = at.length ? Math.min(...at) : 0;
    let start = Math.max(first - 120, 0);
    const space = text.indexOf(" ", start);
    if (start > 0 && space > -1 && space < first) start = space + 1;
    let end = Math.min(start + 240, text.length);
    const lastSpace = text.lastIndexOf(" ", end);
    if (end < text.length && lastSpace > first) end = lastSpace;
    const head = start > 0 ? "..." : "";
    const tail = end < text.length ? "..." : "";
    return head + text.slice(start, end).trim() + tail;
  },
};

if (typeof Search !== "undefined") {
  const sphinxSummary = Search.makeSearchSummary;
  Search.makeSearchSummary = (htmlText, keywords, anchor) => {
    const doc = new DOMParser().parseFromString(htmlText, "text/html");
    const found = SearchSections.find(doc, keywords, anchor);
    if (!found) return sphinxSummary(htmlText, keywords, anchor);
    const summary = document.createElement("p");
    summary.classList.add("context");
    summary.textContent = SearchSections.snippet(found.text, keywords);
    // Sphinx appends the summary to the result's list item as soon as this returns; then its link is
    // pointed at the section, and names it.
    queueMicrotask(() => {
      const link = summary.parentElement && summary.parentElement.querySelector("a");
      if (!link) return;
      link.setAttribute("href", link.getAttribute("href").split("#")[0] + found.anchor);
      if (found.heading && !link.textContent.includes(found.heading)) link.append(` > ${found.heading}`);
    });
    return summary;
  };
}
