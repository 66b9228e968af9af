// Sample news texts for the playground (written for jetinfer).
export const samples = [
  { name: 'Markets rally', text: 'Shares of Acme Corp surged 12% in New York on Tuesday after the company reported record quarterly profits and raised its full-year outlook, Chief Executive Maria Lopez told analysts.' },
  { name: 'Bank collapse', text: 'Regulators in Frankfurt seized Nordbank AG late on Friday after a run on deposits, and prosecutors opened a fraud investigation into its former chairman, Klaus Weber.' },
  { name: 'Trade talks', text: 'Negotiators from the European Union and Japan met in Brussels to resume talks on tariffs for cars and steel; officials said a deal could be signed before the G7 summit in Ottawa.' },
  { name: 'Earnings miss', text: 'Globex Inc. shares plunged 18% as the retailer missed earnings estimates, cut 4,000 jobs and warned that weak demand in China would weigh on sales through the winter.' },
  { name: 'Markup in text', text: 'Reuters reported that <img src=x onerror=alert(1)> and <script>alert("x")</script> appeared in a feed from London, where Barclays said nothing 🙂 about it.' },
];

// A query and news lines for a text-ranking (rerank) task, one document a
// line in the playground.
export const rerankSample = {
  query: 'Which company reported record profits?',
  documents: samples.map((s) => s.text).concat([
    'The central bank left interest rates unchanged and signalled no cut before the spring.',
    'Acme Corp said quarterly profit doubled to a record on strong demand for its cloud services.',
  ]),
};

// Candidate labels for a zero-shot classification task.
export const zeroShotLabels = 'business, politics, crime, sports, technology';
