namespace Consort;
