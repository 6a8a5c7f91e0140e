import { LabIcon } from '@jupyterlab/ui-components';

/** A small "f(x)" mark; `jp-icon3` lets the theme recolour it. */
const svgstr = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">
  <g class="jp-icon3" fill="#616161">
    <path d="M10.6 3.2c-1.9 0-3 1.1-3.4 3.2L6.9 8H5v2h1.5l-1.3 7.1c-.2 1-.6 1.4-1.2 1.4-.3 0-.6-.1-.9-.2L2.7 20.2c.4.2 1 .3 1.6.3 1.8 0 2.9-1.1 3.3-3.3L8.9 10h2.3V8H9.3l.3-1.4c.2-.9.5-1.4 1.2-1.4.3 0 .6.1.9.2l.4-1.9c-.4-.2-.9-.3-1.5-.3z"/>
    <path d="M14.3 7.5c-1.3 1.4-2 3.2-2 5.2s.7 3.8 2 5.2l1.2-1c-1-1.1-1.6-2.6-1.6-4.2s.6-3.1 1.6-4.2l-1.2-1z"/>
    <path d="M21.7 7.5l-1.2 1c1 1.1 1.6 2.6 1.6 4.2s-.6 3.1-1.6 4.2l1.2 1c1.3-1.4 2-3.2 2-5.2s-.7-3.8-2-5.2z"/>
    <path d="M16.4 9.6l1.4 2.1-1.9 2.9h1.7l1.1-1.8 1.1 1.8h1.7l-1.9-2.9 1.4-2.1h-1.6l-.7 1.2-.7-1.2z"/>
  </g>
</svg>`;

export const functionsIcon = new LabIcon({ name: 'functions-nb:functions', svgstr });
